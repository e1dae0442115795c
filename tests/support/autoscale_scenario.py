"""The autoscaling scenario: a burst of votes on a fake multi-node cluster, watched from Ray's state.

Shared by tests/autoscaling/test_node_autoscaling.py (which runs it in a process of its own:
`python -m tests.support.autoscale_scenario --json FILE`, so no Ray state leaks into pytest)
and scripts/autoscale_demo.py (which prints the timeline as it goes).

What happens:

1. a fake autoscaling cluster starts (tests/support/fake_cluster.py): a head with 2 CPUs, worker
   nodes of 1 CPU added on demand;
2. config.yaml's application is deployed on it with only what isolates it (own topic, consumer
   group, Redis db, MongoDB database, Serve ports 48000/49000, proxy on the head only: the fake
   nodes share one network namespace) and what makes nodes matter here: each pool replica asks
   for a whole CPU, so past the first one the head is full and a replica waits for a new node;
3. a bounded burst of records goes straight into the topic;
4. every ~2 s a row of the timeline is taken: records produced, consumer lag (from Kafka: the
   group's committed offsets against the partitions' ends), replicas per deployment
   (serve.status()), nodes and CPUs (ray.nodes(), ray.available_resources());
5. it waits, each step bounded, for: pool replicas up -> a worker node added -> lag drained ->
   pool back to its minimum and the worker nodes gone; then checks every record was counted
   once (Redis votes:total) and stored once (MongoDB count).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from deployments import check_config
from tests.support.fake_cluster import CLIENT_ENV, ClusterSpec, FakeCluster
from tests.support.kafka import KAFKA, LagReader, create_topics, delete_topics
from tests.support.names import RunNames
from tests.support.serve import deploy_config

ROOT = Path(__file__).resolve().parents[2]
APP = "votes"
INGRESS, POOL = "VoteIngress", "VotePersister"
BANDS = [("Alux Nahual", "Alux Nahual"), ("Bohemia Suburbana", "Sueños"), ("Viernes Verde", "V"),
         ("Easy Easy", "EE"), ("Malacates Trébol Shop", "Niño Pilas"), ("Ricardo Arjona", "Animal")]


@dataclass
class ScenarioSpec:
    records: int = 300_000  # 30 s at produce_rate: longer than a new replica takes to start
    produce_rate: float = 10_000  # records/s, at most
    http_port: int = 48000
    grpc_port: int = 49000
    # None: the first empty database from 15 down to 3, claimed with an owner key. Redis has 16
    # databases and concurrent test sessions pick their own: this run never empties a database,
    # it only deletes the app's keys in the one it claimed, at the end, if it still owns it.
    redis_db: int | None = None
    sample_every_s: float = 2.0
    # Each pool replica takes a whole CPU: the head (2 CPUs, 0.5 for the ingress) fits one.
    pool_cpus: float = 1.0
    # 1 on the head + one per worker node (cluster max_workers 2).
    pool_max_replicas: int = 3
    # config.yaml's policy with the waits shortened, so that the whole scenario fits in minutes,
    # and a target lag one replica cannot keep under at produce_rate: the pool drains ~10k/s on
    # one CPU, so config.yaml's 10,000 was never crossed on a fast run (lag peaked near 6,000).
    policy_overrides: dict[str, Any] = field(default_factory=lambda: {
        "target_lag_per_replica": 1_000, "low_water_lag": 200,
        "drained_hold_s": 10, "downscale_cooldown_s": 10, "upscale_cooldown_s": 5,
    })
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    # Bounds of each step (seconds).
    deploy_timeout_s: float = 180
    scale_up_timeout_s: float = 60
    node_up_timeout_s: float = 120
    drain_timeout_s: float = 180
    scale_down_timeout_s: float = 150
    count_timeout_s: float = 60


@dataclass
class Row:
    t: float  # seconds since the burst started (negative: before it)
    produced: int  # records Kafka acknowledged so far
    rate: float  # acknowledged records per second since the previous row
    lag: int | None  # records the consumer group is behind, over all partitions
    ingress: int  # running replicas
    pool: int  # running replicas
    pool_starting: int  # replicas starting, or pending until a node has room
    nodes: int  # alive nodes, head included
    cpus_used: float
    cpus_total: float


@dataclass
class Result:
    spec: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    events: dict[str, float] = field(default_factory=dict)  # what first happened when (t)
    redis_db: int | None = None
    produced: int = 0
    produce_errors: int = 0
    redis_total: int | None = None
    mongo_count: int | None = None
    failure: str | None = None
    dashboard: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class StepTimeout(Exception):
    pass


OWNER_KEY = "votes-autoscale:owner"


def claim_redis_db(wanted: int | None, owner: str) -> int:
    """An empty Redis database, marked as this run's (never one with data in it)."""
    import redis

    for db in [wanted] if wanted is not None else range(15, 2, -1):
        client = redis.Redis(port=6379, db=db)
        try:
            if client.dbsize() == 0 and client.set(OWNER_KEY, owner, nx=True):
                return db
        finally:
            client.close()
    raise RuntimeError(f"no empty Redis database among {wanted if wanted is not None else '15..3'}")


def release_redis_db(db: int, owner: str) -> None:
    """Delete the app's keys and the owner key, only if this run still owns the database."""
    import redis

    from serve_app.stores.redis_counts import ALL_KEYS

    client = redis.Redis(port=6379, db=db)
    try:
        if client.get(OWNER_KEY) == owner.encode():
            client.delete(*ALL_KEYS, OWNER_KEY)
    finally:
        client.close()


# ---- the parts -------------------------------------------------------------------------------


class Burst(threading.Thread):
    """Produce `records` valid vote records into the topic at up to `rate` per second."""

    def __init__(self, topic: str, records: int, rate: float) -> None:
        super().__init__(name="burst", daemon=True)
        self.topic, self.records, self.rate = topic, records, rate
        self.acked = 0
        self.errors = 0
        self.done = threading.Event()
        self._halt = threading.Event()

    def halt(self) -> None:
        self._halt.set()

    def _report(self, error: Any, _message: Any) -> None:
        if error is None:
            self.acked += 1
        else:
            self.errors += 1

    def run(self) -> None:
        from confluent_kafka import Producer

        from serve_app.domain.votes import Vote, accept, encode_record

        producer = Producer({
            "bootstrap.servers": KAFKA, "acks": "all", "enable.idempotence": True,
            "linger.ms": 20, "queue.buffering.max.messages": 200_000,
        })
        templates = [accept(Vote(name=band, album=album, year=1980 + i, rank=1 + i), "http")
                     for i, (band, album) in enumerate(BANDS)]
        started = time.monotonic()
        now = datetime.now(UTC)
        try:
            for i in range(self.records):
                if self._halt.is_set():
                    break
                if i % 1000 == 0:
                    now = datetime.now(UTC)
                    ahead = i / self.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
                record = templates[i % len(templates)].model_copy(
                    update={"vote_id": str(uuid.uuid4()), "received_at": now})
                message = encode_record(record)
                while True:
                    try:
                        producer.produce(self.topic, key=message.key, value=message.value,
                                         headers=message.headers, on_delivery=self._report)
                        break
                    except BufferError:
                        producer.poll(0.05)
                producer.poll(0)
            producer.flush(60)
        finally:
            self.done.set()


def replica_counts(deployment: Any) -> tuple[int, int]:
    """(running, starting) of a deployment in serve.status()."""
    states = {str(getattr(k, "value", k)): v for k, v in (deployment.replica_states or {}).items()}
    running = states.get("RUNNING", 0)
    starting = sum(states.get(s, 0) for s in ("STARTING", "UPDATING", "RECOVERING"))
    return running, starting


def app_config(names: RunNames, spec: ScenarioSpec, redis_db: int) -> dict[str, Any]:
    """config.yaml, isolated and adapted for this cluster (see the module docstring)."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["proxy_location"] = "HeadOnly"
    config["http_options"]["port"] = spec.http_port
    config["grpc_options"]["port"] = spec.grpc_port
    (app,) = config["applications"]
    app["args"] |= {
        "kafka_topic": names.topic,
        "kafka_dlq_topic": names.dlq_topic,
        "kafka_consumer_group": names.group,
        "redis_url": f"redis://127.0.0.1:6379/{redis_db}",
        "mongo_database": names.mongo_database,
    }
    (pool,) = [d for d in app["deployments"] if d["name"] == POOL]
    pool["ray_actor_options"]["num_cpus"] = spec.pool_cpus
    pool["autoscaling_config"]["max_replicas"] = spec.pool_max_replicas
    pool["autoscaling_config"]["policy"]["policy_kwargs"] |= spec.policy_overrides
    return config


# ---- the run ---------------------------------------------------------------------------------


class Scenario:
    def __init__(self, spec: ScenarioSpec | None = None,
                 on_row: Callable[[Row], None] | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.spec = spec or ScenarioSpec()
        self.names = RunNames("autoscale")
        self.on_row = on_row or (lambda _row: None)
        self.log = log or (lambda _line: None)
        self.cluster = FakeCluster(self.spec.cluster)
        self.result = Result(spec=asdict(self.spec))
        self._burst: Burst | None = None
        self._lag: LagReader | None = None
        self._t0: float | None = None
        self._last: tuple[float, int] | None = None
        self._min_pool = 1
        self._count_error: Exception | None = None

    def run(self) -> Result:
        try:
            self._run()
        except StepTimeout as exc:
            self.result.failure = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported in the result, with the timeline
            self.result.failure = f"{type(exc).__name__}: {exc}"
        finally:
            self._clean_up()
        return self.result

    def _run(self) -> None:
        spec = self.spec
        self._prepare_stores()
        self.log(f"starting a fake autoscaling cluster (head {spec.cluster.head_cpus:g} CPUs, "
                 f"up to {spec.cluster.max_workers} workers of {spec.cluster.worker_cpus:g})")
        self.cluster.start()
        dashboard = self.cluster.dashboard_url if spec.cluster.include_dashboard else "off"
        self.result.dashboard = dashboard
        self.log(f"cluster up at {self.cluster.address}, dashboard {dashboard}")
        self._deploy()
        self._lag = LagReader(self.names.topic, self.names.group)

        self._t0 = time.monotonic() + 2 * spec.sample_every_s  # two rows of "before"
        self._sample_until(lambda: time.monotonic() >= (self._t0 or 0), 10, "baseline")
        target = self._policy_setting("target_lag_per_replica")
        self.log(f"burst: {spec.records} records at up to {spec.produce_rate:g}/s "
                 f"into {self.names.topic}")
        self._burst = Burst(self.names.topic, spec.records, spec.produce_rate)
        self._burst.start()

        self._wait("pool_up", spec.scale_up_timeout_s,
                   "the pool to scale up (VotePersister replicas > min)")
        self._wait("node_added", spec.node_up_timeout_s, "the autoscaler to add a worker node")
        self._wait("drained", spec.drain_timeout_s, "the lag to drain (all produced, lag 0)")
        # Offsets are committed after both stores: drained means counted. Count (MongoDB takes
        # a while over 100k+ documents) while the pool and the nodes scale in.
        counting = threading.Thread(target=self._count_safely, name="count", daemon=True)
        counting.start()
        self._wait("scaled_in", spec.scale_down_timeout_s,
                   "the pool back to its minimum and the worker nodes gone")
        counting.join(timeout=spec.count_timeout_s + 60)
        if counting.is_alive():
            raise StepTimeout("counting the stored votes did not finish")
        if self._count_error is not None:
            raise self._count_error
        self.log(f"done: lag peaked at {max((r.lag or 0) for r in self.result.rows)} "
                 f"(target per replica {target:g})")

    # ---- steps -------------------------------------------------------------------------------

    def _prepare_stores(self) -> None:
        create_topics([self.names.topic])
        create_topics([self.names.dlq_topic], partitions=1)
        self.result.redis_db = claim_redis_db(self.spec.redis_db, self.names.run_id)
        self.log(f"Redis database {self.result.redis_db}, MongoDB database "
                 f"{self.names.mongo_database}, topic {self.names.topic}")

    def _deploy(self) -> None:
        # The cluster's token, not one a test session or ~/.ray may hold; read by `ray.init`.
        os.environ.update(self.cluster.client_env())
        import ray
        from ray import serve

        assert self.result.redis_db is not None
        config = app_config(self.names, self.spec, self.result.redis_db)
        pool = next(d for d in config["applications"][0]["deployments"] if d["name"] == POOL)
        self._min_pool = pool["autoscaling_config"]["min_replicas"]
        self._policy = pool["autoscaling_config"]["policy"]["policy_kwargs"]
        # policy_overrides are ours, and Serve's controller hides a policy that refuses its
        # settings: name the problem here rather than wait for a deploy that never comes.
        if problems := check_config.problems(config):
            raise RuntimeError("the scenario's Serve config is invalid: " + "; ".join(problems))
        ray.init(address=self.cluster.address, namespace="serve", log_to_driver=False)
        deploy_config(config)
        self.log("deploying config.yaml's app ...")
        deadline = time.monotonic() + self.spec.deploy_timeout_s
        while time.monotonic() < deadline:
            app = serve.status().applications.get(APP)
            if app is not None and app.status == "DEPLOY_FAILED":
                raise RuntimeError(f"the app failed to deploy: {app.message}")
            if app is not None and app.status == "RUNNING":
                self.log("app RUNNING")
                return
            time.sleep(1)
        raise StepTimeout(f"the app was not RUNNING within {self.spec.deploy_timeout_s:.0f}s")

    def _policy_setting(self, name: str) -> float:
        return float(self._policy[name])

    def _wait(self, event: str, timeout_s: float, what: str) -> None:
        self._sample_until(lambda: event in self.result.events, timeout_s, what)

    def _sample_until(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() >= deadline:
                raise StepTimeout(f"timed out after {timeout_s:.0f}s waiting for {what}")
            started = time.monotonic()
            self._sample()
            time.sleep(max(0.0, self.spec.sample_every_s - (time.monotonic() - started)))

    def _sample(self) -> None:
        import ray
        from ray import serve

        now = time.monotonic()
        produced = self._burst.acked if self._burst else 0
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = (produced - self._last[1]) / (now - self._last[0])
        self._last = (now, produced)
        deployments = serve.status().applications[APP].deployments
        ingress, _ = replica_counts(deployments[INGRESS])
        pool, pool_starting = replica_counts(deployments[POOL])
        alive = [n for n in ray.nodes() if n["Alive"]]
        total = sum(n["Resources"].get("CPU", 0) for n in alive)
        free = ray.available_resources().get("CPU", 0.0)
        row = Row(
            t=round(now - (self._t0 or now), 1), produced=produced, rate=round(rate),
            lag=self._lag.lag() if self._lag else None, ingress=ingress, pool=pool,
            pool_starting=pool_starting, nodes=len(alive), cpus_used=round(total - free, 2),
            cpus_total=total,
        )
        self.result.rows.append(row)
        self._note_events(row)
        self.on_row(row)

    def _note_events(self, row: Row) -> None:
        events, t = self.result.events, row.t
        burst = self._burst

        def first(name: str, happened: bool) -> None:
            if happened and name not in events:
                events[name] = t

        if burst is None:
            return
        target = self._policy_setting("target_lag_per_replica")
        first("lag_rose", (row.lag or 0) >= target)
        first("pool_up", row.pool + row.pool_starting > self._min_pool)
        first("pool_running_up", row.pool > self._min_pool)
        first("node_added", "pool_up" in events and row.nodes > 1)
        all_in = burst.done.is_set() and burst.acked + burst.errors >= burst.records
        first("produced", all_in)
        first("drained", all_in and row.lag == 0)
        first("scaled_in", "drained" in events and row.pool == self._min_pool
              and row.pool_starting == 0 and row.nodes == 1)

    def _count_safely(self) -> None:
        try:
            self._check_counts()
        except Exception as exc:  # noqa: BLE001 - handed to the main thread
            self._count_error = exc

    def _check_counts(self) -> None:
        import redis
        from pymongo import MongoClient

        assert self._burst is not None
        started = time.monotonic()
        self.result.produced = self._burst.acked
        self.result.produce_errors = self._burst.errors
        client = redis.Redis(port=6379, db=self.result.redis_db)
        mongo: MongoClient[dict[str, Any]] = MongoClient("mongodb://127.0.0.1:27017/",
                                                         serverSelectionTimeoutMS=5000)
        try:
            if client.get(OWNER_KEY) != self.names.run_id.encode():
                raise RuntimeError(f"Redis database {self.result.redis_db} was emptied or taken "
                                   "by someone else during the run: the counts cannot be checked")
            deadline = time.monotonic() + self.spec.count_timeout_s
            while True:
                total = client.get("votes:total")
                self.result.redis_total = int(total) if total is not None else 0
                self.result.mongo_count = mongo[self.names.mongo_database]["votes"].count_documents({})
                if (self.result.redis_total == self.result.mongo_count == self.result.produced
                        or time.monotonic() >= deadline):
                    break
                time.sleep(2)
        finally:
            client.close()
            mongo.close()
        self.log(f"produced {self.result.produced}, counted {self.result.redis_total} (Redis "
                 f"votes:total), stored {self.result.mongo_count} (MongoDB; counting took "
                 f"{time.monotonic() - started:.0f}s)")

    def _clean_up(self) -> None:
        """Every step runs whatever the previous ones did; the cluster always stops."""
        for step in (self._stop_burst, self._disconnect, self.cluster.stop, self._drop_data):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - report and go on cleaning
                self.log(f"clean-up step {step.__name__} failed: {type(exc).__name__}: {exc}")

    def _stop_burst(self) -> None:
        if self._burst is not None:
            self._burst.halt()
            self._burst.join(timeout=30)
        if self._lag is not None:
            self._lag.close()

    def _disconnect(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        self.log("stopping the cluster (its own processes, by PID)")

    def _drop_data(self) -> None:
        """This run's topics, Redis db and MongoDB database (exact names, nothing else)."""
        from pymongo import MongoClient

        delete_topics([self.names.topic, self.names.dlq_topic])
        if self.result.redis_db is not None:
            release_redis_db(self.result.redis_db, self.names.run_id)
        mongo: MongoClient[dict[str, Any]] = MongoClient("mongodb://127.0.0.1:27017/",
                                                         serverSelectionTimeoutMS=5000)
        mongo.drop_database(self.names.mongo_database)
        mongo.close()


# ---- presenting a timeline -----------------------------------------------------------------

COLUMNS = ("t (s)", "produced/s", "lag", "VoteIngress", "VotePersister", "nodes", "CPUs used")


def row_cells(row: Row) -> tuple[str, ...]:
    pool = f"{row.pool}" + (f" (+{row.pool_starting} starting)" if row.pool_starting else "")
    return (f"{row.t:.0f}", f"{row.rate:,.0f}", "?" if row.lag is None else f"{row.lag:,}",
            str(row.ingress), pool, str(row.nodes), f"{row.cpus_used:g} / {row.cpus_total:g}")


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---:" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(row_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def text_table_line(cells: tuple[str, ...]) -> str:
    widths = (6, 11, 9, 11, 26, 5, 10)
    return "  ".join(cell.rjust(width) for cell, width in zip(cells, widths, strict=True))


def stop_on_sigterm() -> None:
    def handler(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")
    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="write the result here")
    parser.add_argument("--records", type=int, default=ScenarioSpec.records)
    parser.add_argument("--rate", type=float, default=ScenarioSpec.produce_rate)
    parser.add_argument("--redis-db", type=int, help="an empty Redis database (default: find one)")
    args = parser.parse_args(argv)
    missing = {k: v for k, v in CLIENT_ENV.items() if os.environ.get(k) != v}
    if missing:  # Ray reads them at import: re-run with them set
        os.execve(sys.executable, [sys.executable, "-m", "tests.support.autoscale_scenario",
                                   *(argv if argv is not None else sys.argv[1:])],
                  os.environ | CLIENT_ENV)
    stop_on_sigterm()

    def log(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)

    def show(row: Row) -> None:
        print(text_table_line(row_cells(row)), flush=True)

    spec = ScenarioSpec(records=args.records, produce_rate=args.rate, redis_db=args.redis_db,
                        cluster=ClusterSpec(include_dashboard=False))
    print(text_table_line(COLUMNS), flush=True)
    result = Scenario(spec, on_row=show, log=log).run()
    args.json.write_text(json.dumps(result.to_json(), indent=1))
    return 0 if result.failure is None else 1


if __name__ == "__main__":
    sys.exit(main())

