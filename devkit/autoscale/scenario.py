"""The autoscaling scenario: a burst of votes on a fake multi-node cluster, watched from Ray's
state.

Shared by tests/autoscaling/test_node_autoscaling.py (which runs it in a process of its own:
`python -m devkit.autoscale --json FILE`, so no Ray state leaks into pytest)
and scripts/autoscale_demo.py (which prints the timeline as it goes). Its parts: spec.py (what
runs, what is recorded, the app config), burst.py (the records), timeline.py (the table).

What happens:

1. a fake autoscaling cluster starts (devkit/autoscale/fake_cluster.py): a head with 2 CPUs, worker
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

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from deployments import check_config
from devkit.autoscale.burst import Burst
from devkit.autoscale.fake_cluster import FakeCluster
from devkit.autoscale.spec import APP, INGRESS, POOL, Result, Row, ScenarioSpec, app_config
from devkit.kafka import LagReader, create_topics, delete_topics
from devkit.names import RunNames
from devkit.serve import deploy_config


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


def replica_counts(deployment: Any) -> tuple[int, int]:
    """(running, starting) of a deployment in serve.status()."""
    states = {str(getattr(k, "value", k)): v for k, v in (deployment.replica_states or {}).items()}
    running = states.get("RUNNING", 0)
    starting = sum(states.get(s, 0) for s in ("STARTING", "UPDATING", "RECOVERING"))
    return running, starting


# ---- the run ---------------------------------------------------------------------------------


class Scenario:
    def __init__(
        self,
        spec: ScenarioSpec | None = None,
        on_row: Callable[[Row], None] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
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
        self.log(
            f"starting a fake autoscaling cluster (head {spec.cluster.head_cpus:g} CPUs, "
            f"up to {spec.cluster.max_workers} workers of {spec.cluster.worker_cpus:g})"
        )
        self.cluster.start()
        dashboard = self.cluster.dashboard_url if spec.cluster.include_dashboard else "off"
        self.result.dashboard = dashboard
        self.log(f"cluster up at {self.cluster.address}, dashboard {dashboard}")
        self._deploy()
        self._lag = LagReader(self.names.topic, self.names.group)

        self._t0 = time.monotonic() + 2 * spec.sample_every_s  # two rows of "before"
        self._sample_until(lambda: time.monotonic() >= (self._t0 or 0), 10, "baseline")
        target = self._policy_setting("target_lag_per_replica")
        self.log(
            f"burst: {spec.records} records at up to {spec.produce_rate:g}/s "
            f"into {self.names.topic}"
        )
        self._burst = Burst(self.names.topic, spec.records, spec.produce_rate)
        self._burst.start()

        self._wait(
            "pool_up",
            spec.scale_up_timeout_s,
            "the pool to scale up (VotePersister replicas > min)",
        )
        self._wait("node_added", spec.node_up_timeout_s, "the autoscaler to add a worker node")
        self._wait("drained", spec.drain_timeout_s, "the lag to drain (all produced, lag 0)")
        # Offsets are committed after both stores: drained means counted. Count (MongoDB takes
        # a while over 100k+ documents) while the pool and the nodes scale in.
        counting = threading.Thread(target=self._count_safely, name="count", daemon=True)
        counting.start()
        self._wait(
            "scaled_in",
            spec.scale_down_timeout_s,
            "the pool back to its minimum and the worker nodes gone",
        )
        counting.join(timeout=spec.count_timeout_s + 60)
        if counting.is_alive():
            raise StepTimeout("counting the stored votes did not finish")
        if self._count_error is not None:
            raise self._count_error
        self.log(
            f"done: lag peaked at {max((r.lag or 0) for r in self.result.rows)} "
            f"(target per replica {target:g})"
        )

    # ---- steps -------------------------------------------------------------------------------

    def _prepare_stores(self) -> None:
        create_topics([self.names.topic])
        create_topics([self.names.dlq_topic], partitions=1)
        self.result.redis_db = claim_redis_db(self.spec.redis_db, self.names.run_id)
        self.log(
            f"Redis database {self.result.redis_db}, MongoDB database "
            f"{self.names.mongo_database}, topic {self.names.topic}"
        )

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
            t=round(now - (self._t0 or now), 1),
            produced=produced,
            rate=round(rate),
            lag=self._lag.lag() if self._lag else None,
            ingress=ingress,
            pool=pool,
            pool_starting=pool_starting,
            nodes=len(alive),
            cpus_used=round(total - free, 2),
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
        first(
            "scaled_in",
            "drained" in events
            and row.pool == self._min_pool
            and row.pool_starting == 0
            and row.nodes == 1,
        )

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
        mongo: MongoClient[dict[str, Any]] = MongoClient(
            "mongodb://127.0.0.1:27017/", serverSelectionTimeoutMS=5000
        )
        try:
            if client.get(OWNER_KEY) != self.names.run_id.encode():
                raise RuntimeError(
                    f"Redis database {self.result.redis_db} was emptied or taken "
                    "by someone else during the run: the counts cannot be checked"
                )
            deadline = time.monotonic() + self.spec.count_timeout_s
            while True:
                total = client.get("votes:total")
                self.result.redis_total = int(total) if total is not None else 0
                self.result.mongo_count = mongo[self.names.mongo_database]["votes"].count_documents(
                    {}
                )
                if (
                    self.result.redis_total == self.result.mongo_count == self.result.produced
                    or time.monotonic() >= deadline
                ):
                    break
                time.sleep(2)
        finally:
            client.close()
            mongo.close()
        self.log(
            f"produced {self.result.produced}, counted {self.result.redis_total} (Redis "
            f"votes:total), stored {self.result.mongo_count} (MongoDB; counting took "
            f"{time.monotonic() - started:.0f}s)"
        )

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
        mongo: MongoClient[dict[str, Any]] = MongoClient(
            "mongodb://127.0.0.1:27017/", serverSelectionTimeoutMS=5000
        )
        mongo.drop_database(self.names.mongo_database)
        mongo.close()


def stop_on_sigterm() -> None:
    def handler(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, handler)
