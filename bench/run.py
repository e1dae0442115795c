"""`make bench`: every ingestion path and sink of votes, side by side, on this machine.

    .venv/bin/python -m bench.run                      # everything, Serve in 2 modes (~15 min on 2 cores)
    .venv/bin/python -m bench.run --quick              # a tiny smoke of everything (~2-3 min)
    .venv/bin/python -m bench.run --only raw,peer      # groups or scenario names
    .venv/bin/python -m bench.run --only serve --serve-modes default,throughput,haproxy

Scenarios (group in brackets):
  kafka_producer_raw [raw]   confluent-kafka producing vote records from one process, acks=all
  ferretdb_raw       [raw]   insert_many of vote documents, 1000 per call
  redis_raw          [raw]   the pool's counter Lua script, 1000 votes per call
  plain_http_peer    [peer]  uvicorn + Starlette: validate with Vote, produce with acks (no Ray)
  plain_grpc_peer    [peer]  the same with grpc.aio
  serve_http_single, serve_http_batch, serve_grpc_single, serve_grpc_batch   [serve]
                             our own `serve run config.yaml` (per --serve-modes), 1000 per batch
  e2e_latency        [e2e]   acceptance -> visible in /results, at ~50% of the best single rate
  persist_x1, persist_xN [persist]  the consumer pool draining a preloaded topic, 1 and N replicas

Each scenario runs --repeats times (warm-up, then a measured window); the report gives the median
and the spread (min-max). Every repeat reconciles (votes accepted == records in Kafka == votes
counted, as applicable) and counts errors. Nothing touches a developer's data: own topics, consumer
groups, MongoDB databases, Redis keys or databases (--redis-db, --persist-redis-db), all removed
at the end. Writes bench/results/latest.{json,md,png} (or --out).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis
import yaml

from bench import loadgen
from bench.common import (
    KAFKA,
    MONGO_URL,
    PORT_RANGE,
    PY,
    REDIS_HOST,
    REDIS_PORT,
    RESULTS,
    ROOT,
    CpuMeter,
    Proc,
    drop_mongo_database,
    log,
    stack_pids,
    topic_records,
    wait_for_count,
)
from bench.profile import Profiler
from bench.serve_instance import MODES, ServeInstance
from serve_app.stores import redis_counts as rc
from tests.support.kafka import create_topics, delete_topics
from tests.support.names import RunNames
from tests.support.net import free_port, port_open
from tests.support.waiting import wait_until

GROUPS = {
    "raw": ["kafka_producer_raw", "ferretdb_raw", "redis_raw"],
    "peer": ["plain_http_peer", "plain_grpc_peer"],
    "serve": ["serve_http_single", "serve_http_batch", "serve_grpc_single", "serve_grpc_batch"],
    "e2e": ["e2e_latency"],
    "persist": ["persist"],
}
ALL = [name for names in GROUPS.values() for name in names]


@dataclass
class Plan:
    warmup_s: float
    duration_s: float
    batch_duration_s: float
    repeats: int
    concurrency: int
    batch_concurrency: int
    persist_records: int
    persist_replicas: list[int]
    drain_timeout_s: float
    e2e_duration_s: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny durations, one repeat: a smoke test")
    parser.add_argument("--only", default="", help="comma-separated groups or scenario names")
    parser.add_argument("--skip", default="", help="comma-separated groups or scenario names to leave out")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--warmup", type=float, help="seconds of warm-up before each measured window")
    parser.add_argument("--duration", type=float, help="seconds of each measured window")
    parser.add_argument("--batch-duration", type=float, help="measured window of the batch scenarios")
    parser.add_argument("--concurrency", type=int, help="requests in flight, single-vote scenarios")
    parser.add_argument("--batch-concurrency", type=int, help="requests in flight, batch scenarios")
    parser.add_argument("--persist-records", type=int, help="records preloaded for persist")
    parser.add_argument("--persist-replicas", default="",
                        help="pool sizes to measure (default: 1 and config.yaml's VotePersister replicas)")
    parser.add_argument("--serve-modes", default="default,haproxy",
                        help=f"Serve environment modes to compare, comma-separated: {', '.join(MODES)} "
                             "(default: default,haproxy; e2e_latency runs in the last one)")
    parser.add_argument("--serve-config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--ingress-max-ongoing", type=int,
                        help="override VoteIngress max_ongoing_requests (experiments)")
    parser.add_argument("--ingress-replicas", type=int,
                        help="fix VoteIngress at this many replicas instead of autoscaling (experiments)")
    parser.add_argument("--pool-replicas", type=int,
                        help="fix the Serve app's VotePersister at this many replicas (experiments)")
    parser.add_argument("--app-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="override an application arg of the Serve app, e.g. kafka_linger_ms=5")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=9000)
    parser.add_argument("--redis-db", type=int, default=13, help="Redis database of the Serve app under test")
    parser.add_argument("--persist-redis-db", type=int, default=14,
                        help="Redis database of the persist runs (and of redis_raw's prefixed keys)")
    parser.add_argument("--e2e-rate", type=float, help="votes/s for e2e_latency (default: 50%% of the best)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where latest.{json,md,png} go")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                        help="py-spy profile of the ingress replica and Serve's proxy during the first repeat "
                             "of each Serve scenario (default: on when py-spy is installed)")
    parser.add_argument("--merge", action="store_true",
                        help="update the existing latest.json: replace the scenarios measured now, keep the "
                             "others (each scenario carries its measured_at and plan)")
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace, config: dict[str, Any]) -> Plan:
    pool = next((d for d in config["applications"][0].get("deployments", [])
                 if d["name"] == "VotePersister"), {})
    pool_default = pool.get("num_replicas", 2)
    if "autoscaling_config" in pool or not isinstance(pool_default, int):
        # Autoscaled on lag: at full load it grows past 1; on 2 cores more than 2 consumer
        # processes only share the same CPUs. Measure 1 and 2 (pass --persist-replicas for more).
        pool_default = 2
    quick = args.quick
    replicas = ([int(x) for x in args.persist_replicas.split(",") if x.strip()]
                or sorted({1, pool_default}))
    return Plan(
        warmup_s=args.warmup if args.warmup is not None else (0.5 if quick else 3.0),
        duration_s=args.duration if args.duration is not None else (2.0 if quick else 8.0),
        batch_duration_s=(args.batch_duration if args.batch_duration is not None
                          else (2.0 if quick else 5.0)),
        repeats=args.repeats or (1 if quick else 3),
        concurrency=args.concurrency or (8 if quick else 32),
        batch_concurrency=args.batch_concurrency or (2 if quick else 4),
        persist_records=args.persist_records or (2000 if quick else 40_000),
        persist_replicas=replicas,
        drain_timeout_s=60 if quick else 240,
        e2e_duration_s=4 if quick else 12,
    )


def selected(args: argparse.Namespace) -> list[str]:
    def expand(text: str) -> set[str]:
        names: set[str] = set()
        for item in filter(None, (t.strip() for t in text.split(","))):
            if item in GROUPS:
                names.update(GROUPS[item])
            elif item in ALL:
                names.add(item)
            elif item.startswith("persist"):
                names.add("persist")
            else:
                raise SystemExit(f"unknown scenario or group {item!r}; known: {', '.join([*GROUPS, *ALL])}")
        return names

    chosen = expand(args.only) if args.only else set(ALL)
    chosen -= expand(args.skip)
    return [name for name in ALL if name in chosen]


# ---- the run ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.config = yaml.safe_load(args.serve_config.read_text())
        self.plan = make_plan(args, self.config)
        self.names = RunNames("bench")
        self.scenarios: list[dict[str, Any]] = []
        self.topics: list[str] = []
        self.started = time.monotonic()
        # What the CPU meter counts besides the stack: a peer's pid, our serve run's process group.
        self.measured_pids: dict[int, str] = {}
        self.measured_groups: list[int] = []
        self.profiled: set[str] = set()
        if args.profile and (why := Profiler.available()):
            log(f"profiles: off ({why})")
            args.profile = False
        if args.profile and not args.merge:  # raw stacks of this run only (git-ignored)
            shutil.rmtree(args.out / "profiles", ignore_errors=True)

    # -- bookkeeping --

    def stack_pids(self) -> dict[str, int]:
        return stack_pids()  # the module function: restarts of a stack part show as new pids

    def check_stack(self) -> None:
        for name, port in (("Kafka", 9092), ("Redis", 6379), ("MongoDB/FerretDB", 27017)):
            if not port_open("127.0.0.1", port):
                raise SystemExit(f"{name} is not answering on 127.0.0.1:{port}: run `make stack-up`")

    def repeat(self, name: str, run: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
        """Run the repeats of a scenario; a repeat during which a stack part restarted (another
        session's fault test) is thrown away and run again, once."""
        runs = []
        for index in range(self.plan.repeats):
            for attempt in range(2):
                pids = self.stack_pids()
                load = os.getloadavg()[0]
                meter = CpuMeter({pid: part for part, pid in pids.items() if pid} | self.measured_pids,
                                 self.measured_groups)
                meter.start()
                try:
                    result = run()
                except Exception as exc:  # noqa: BLE001 - reported as a failed repeat
                    log(f"{name} #{index + 1}: FAILED: {type(exc).__name__}: {exc}")
                    result = {"votes_per_s": None, "errors": 1, "reconciled": False,
                              "failure": f"{type(exc).__name__}: {exc}"}
                result["cpu_s"] = meter.stop() | result.pop("extra_cpu_s", {})
                result["wall_s"] = round(meter.wall_s, 2)
                if self.measured_groups:
                    result["replicas_at_end"] = replica_counts(self.measured_groups)
                result["loadavg_1m_before"] = round(load, 2)
                disturbed = self.stack_pids() != pids
                if disturbed and attempt == 0:
                    log(f"{name} #{index + 1}: a stack part restarted during the repeat; running it again")
                    continue
                result["disturbed"] = disturbed
                break
            log(f"{name} #{index + 1}: {short(result)}")
            runs.append(result)
        return runs

    def record(self, name: str, runs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        profile = next((run["profile"] for run in runs if run.get("profile")), None)
        if profile:
            extra["profile"] = profile
        scenario = summarize_runs(name, runs) | extra | {
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "plan": {"warmup_s": self.plan.warmup_s, "duration_s": self.plan.duration_s,
                     "batch_duration_s": self.plan.batch_duration_s, "repeats": self.plan.repeats},
        }
        self.scenarios.append(scenario)
        return scenario

    def find(self, name: str) -> dict[str, Any] | None:
        return next((s for s in self.scenarios if s["name"] == name), None)

    # -- raw --

    def raw(self, chosen: list[str]) -> None:
        from bench import sinks

        plan = self.plan
        if "kafka_producer_raw" in chosen:
            topic = self.names.topic_for("raw")
            self.topics.append(topic)
            create_topics([topic])
            self.record("kafka_producer_raw", self.repeat(
                "kafka_producer_raw", lambda: sinks.kafka_producer_raw(topic, plan.warmup_s, plan.duration_s)),
                unit="vote records", path="raw")
        if "ferretdb_raw" in chosen:
            self.record("ferretdb_raw", self.repeat("ferretdb_raw", lambda: sinks.ferretdb_raw(
                self.names.mongo_database_for(f"raw_{time.monotonic_ns() % 10**6}"), min(plan.warmup_s, 1.0),
                max(2.0, plan.duration_s / 2))),
                unit="vote documents", path="raw")
        if "redis_raw" in chosen:
            # Keys under a per-run prefix, in the benchmark's own database: safe next to anything.
            self.record("redis_raw", self.repeat("redis_raw", lambda: sinks.redis_raw(
                self.names.redis_prefix("raw"), min(plan.warmup_s, 1.0), max(2.0, plan.duration_s / 2),
                db=self.args.persist_redis_db)),
                unit="votes counted", path="raw")

    # -- ingestion through a server (peers and Serve) --

    def ingest(self, name: str, *, protocol: str, kind: str, http: tuple[str, int] | None = None,
               grpc_target: str | None = None, topic: str, counter_db: int | None = None,
               concurrency: int | None = None) -> dict[str, Any]:
        """One repeat: load, then reconcile against Kafka (and the counters, when given)."""
        plan = self.plan
        duration = plan.batch_duration_s if kind == "batch" else plan.duration_s
        conc = concurrency or (plan.batch_concurrency if kind == "batch" else plan.concurrency)
        counters = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=counter_db) if counter_db is not None else None
        counted_before = int(counters.get(rc.TOTAL) or 0) if counters else 0
        records_before = topic_records(topic)
        tag = f"{self.names.run_id}{name[:1]}{time.monotonic_ns() % 10**8}"
        # The first repeat of each Serve scenario is profiled (py-spy --nonblocking: the sampled
        # process is not paused, so the rate stays comparable).
        profiler = None
        if self.args.profile and self.measured_groups and name not in self.profiled:
            self.profiled.add(name)
            profiler = Profiler(self.args.out / "profiles", name, self.measured_groups[0],
                                plan.warmup_s + duration)
        with profiler or contextlib.nullcontext():
            if protocol == "http":
                assert http is not None
                path = "/votes/batch" if kind == "batch" else "/votes"
                result = loadgen.run_http(http[0], http[1], path, loadgen.Bodies(kind, tag),
                                          concurrency=conc, warmup_s=plan.warmup_s, duration_s=duration)
            else:
                assert grpc_target is not None
                result = loadgen.run_grpc(grpc_target, loadgen.GrpcMessages(kind, tag),
                                          concurrency=conc, warmup_s=plan.warmup_s, duration_s=duration)
        records = topic_records(topic) - records_before
        summary = result.summary() | {"concurrency": conc, "kafka_records": records}
        accepted = result.accepted_votes
        reconciled = records == accepted
        text = f"accepted {accepted} == records in Kafka {records}"
        if counters is not None:
            target = counted_before + records
            drain_started = time.monotonic()
            reached = wait_for_count(lambda: int(counters.get(rc.TOTAL) or 0), target, plan.drain_timeout_s)
            if reached < target:
                summary["pool_stalled"] = True
            time.sleep(0.3)
            counted = int(counters.get(rc.TOTAL) or 0) - counted_before
            summary["counted"] = counted
            summary["drain_s"] = round(time.monotonic() - drain_started, 2)
            reconciled = reconciled and counted == accepted
            text += f" == counted {counted}"
            counters.close()
        summary["reconciled"] = reconciled
        summary["reconciliation"] = text
        if profiler is not None:
            summary["profile"] = profiler.result
        return summary

    def peers(self, chosen: list[str]) -> None:
        topic = self.names.topic_for("peer")
        self.topics.append(topic)
        create_topics([topic])
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOTES_")} | {
            "VOTES_KAFKA_BOOTSTRAP_SERVERS": KAFKA, "VOTES_KAFKA_TOPIC": topic}
        if "plain_http_peer" in chosen:
            port = free_port(PORT_RANGE)
            peer = Proc("peer-http", [PY, "-m", "uvicorn", "bench.peers.plain_http:app", "--host", "127.0.0.1",
                                      "--port", str(port), "--no-access-log", "--log-level", "warning"], env=env)
            self.measured_pids = {peer.pid: "peer"}
            try:
                wait_until(lambda: port_open("127.0.0.1", port), 30, "the plain HTTP peer",
                           every_s=0.25, alive=peer.alive)
                self.warm_http(("127.0.0.1", port))
                self.record("plain_http_peer", self.repeat("plain_http_peer", lambda: self.ingest(
                    "plain_http_peer", protocol="http", kind="single", http=("127.0.0.1", port), topic=topic)),
                    path="http", server="uvicorn+starlette, 1 worker")
            finally:
                peer.stop()
                self.measured_pids = {}
        if "plain_grpc_peer" in chosen:
            port = free_port(PORT_RANGE)
            peer = Proc("peer-grpc", [PY, "-m", "bench.peers.plain_grpc", "--port", str(port)], env=env)
            self.measured_pids = {peer.pid: "peer"}
            try:
                wait_until(lambda: port_open("127.0.0.1", port), 30, "the plain gRPC peer",
                           every_s=0.25, alive=peer.alive)
                self.record("plain_grpc_peer", self.repeat("plain_grpc_peer", lambda: self.ingest(
                    "plain_grpc_peer", protocol="grpc", kind="single", grpc_target=f"127.0.0.1:{port}",
                    topic=topic)), path="grpc", server="grpc.aio, 1 process")
            finally:
                peer.stop()
                self.measured_pids = {}

    def warm_http(self, http: tuple[str, int]) -> None:
        with contextlib.suppress(Exception):
            loadgen.run_http(http[0], http[1], "/healthz", loadgen.Bodies("single", "warm"),
                             concurrency=1, warmup_s=0, duration_s=0.1)

    # -- Serve --

    def serve_args(self, mode: str) -> tuple[dict[str, Any], str]:
        topic = self.names.topic_for(f"serve-{mode}")
        dlq = topic + ".dlq"
        self.topics += [topic, dlq]
        create_topics([topic])
        create_topics([dlq], partitions=1)
        extra = dict(item.split("=", 1) for item in self.args.app_arg)
        return extra | {
            "kafka_bootstrap_servers": KAFKA,
            "kafka_topic": topic, "kafka_dlq_topic": dlq,
            "kafka_consumer_group": self.names.group_for(f"serve-{mode}"),
            "redis_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.args.redis_db}",
            "mongo_url": MONGO_URL,
            "mongo_database": self.names.mongo_database_for(f"serve_{mode}"),
        }, topic

    def serve(self, chosen: list[str], modes: list[str]) -> None:
        overrides: dict[str, dict[str, Any]] = {}
        if self.args.ingress_max_ongoing:
            overrides.setdefault("VoteIngress", {})["max_ongoing_requests"] = self.args.ingress_max_ongoing
        if self.args.ingress_replicas:
            overrides.setdefault("VoteIngress", {})["num_replicas"] = self.args.ingress_replicas
        if self.args.pool_replicas:
            overrides.setdefault("VotePersister", {})["num_replicas"] = self.args.pool_replicas
        counters = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=self.args.redis_db)
        for mode in modes:
            suffix = "" if mode == "default" else f"[{mode}]"
            clear_votes_keys(counters)  # the bench's own Redis database: the app's votes:* keys only
            args, topic = self.serve_args(mode)
            instance = ServeInstance(args=args, mode=mode, http_port=self.args.http_port,
                                     grpc_port=self.args.grpc_port, config_path=self.args.serve_config,
                                     deployment_overrides=overrides)
            started = time.monotonic()
            instance.start()
            startup_s = round(time.monotonic() - started, 1)
            http = ("127.0.0.1", instance.http_port)
            assert instance.proc is not None
            self.measured_groups = [instance.proc.pid]
            try:
                self.warm_http(http)
                common = {"topic": topic, "counter_db": self.args.redis_db}
                for name, protocol, kind in (("serve_http_single", "http", "single"),
                                             ("serve_http_batch", "http", "batch"),
                                             ("serve_grpc_single", "grpc", "single"),
                                             ("serve_grpc_batch", "grpc", "batch")):
                    if name not in chosen:
                        continue
                    def one(n: str = name, p: str = protocol, k: str = kind, i: ServeInstance = instance,
                            h: tuple[str, int] = http, c: dict[str, Any] = common) -> dict[str, Any]:
                        return self.ingest(n, protocol=p, kind=k, http=h, grpc_target=i.grpc_target, **c)

                    self.record(name + suffix, self.repeat(name + suffix, one), path=protocol, mode=mode,
                                serve_env=instance.env_applied, startup_s=startup_s)
                if "e2e_latency" in chosen and mode == modes[-1]:
                    self.e2e(instance, topic)
            finally:
                self.measured_groups = []
                instance.stop()
                drop_mongo_database(args["mongo_database"])
                clear_votes_keys(counters)
        counters.close()

    def e2e(self, instance: ServeInstance, topic: str) -> None:
        rate = self.args.e2e_rate
        suffix = "" if instance.mode == "default" else f"[{instance.mode}]"
        if rate is None:
            best = [s["votes_per_s"] for n in ("serve_http_single", "serve_grpc_single")
                    if (s := self.find(n + suffix)) and s.get("votes_per_s")]
            rate = 0.5 * max(best) if best else 100.0
        rate = max(5.0, rate)
        from bench.e2e import e2e_latency

        runs = self.repeat("e2e_latency", lambda: e2e_latency(
            instance.http_url, topic, self.args.redis_db, rate=rate, warmup_s=self.plan.warmup_s,
            duration_s=self.plan.e2e_duration_s, run_tag=self.names.run_id,
            drain_timeout_s=self.plan.drain_timeout_s))
        self.record("e2e_latency", runs, path="http", rate_votes_per_s=round(rate, 1), mode=instance.mode,
                    note="p50/p99: a vote's 202 -> its band's count visible in Redis (what /results reads)")

    # -- persist --

    def persist(self) -> None:
        from bench.persist import persist_run, preload

        topic = self.names.topic_for("persist")
        self.topics += [topic, topic + ".dlq"]
        create_topics([topic])
        create_topics([topic + ".dlq"], partitions=1)
        db = self.args.persist_redis_db
        guard = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
        foreign = [k for k in guard.scan_iter(count=100) if not k.decode(errors="replace").startswith("votes:")]
        guard.close()
        if foreign:
            raise SystemExit(f"Redis database {db} holds other data ({foreign[:3]}...): pick another "
                             "with --persist-redis-db")
        log(f"persist: preloading {self.plan.persist_records} records")
        records = preload(topic, self.plan.persist_records)
        timeout = max(60.0, records / 200)
        for replicas in self.plan.persist_replicas:
            def one(r: int = replicas) -> dict[str, Any]:
                run_id = time.monotonic_ns() % 10**8
                return persist_run(topic, self.names.group_for(f"persist-{r}-{run_id}"),
                                   self.names.mongo_database_for(f"persist_{r}_{run_id}"), db, records, r, timeout)

            runs = self.repeat(f"persist_x{replicas}", one)
            self.record(f"persist_x{replicas}", runs, path="pool", replicas=replicas, records=records,
                        unit="votes persisted (Mongo log + Redis counters + commit)")

    # -- all --

    def run(self) -> int:
        chosen = selected(self.args)
        modes = [m.strip() for m in self.args.serve_modes.split(",") if m.strip()]
        for mode in modes:
            if mode not in MODES:
                raise SystemExit(f"unknown serve mode {mode!r}; known: {', '.join(MODES)}")
        self.check_stack()
        log(f"run {self.names.run_id}: {', '.join(chosen)}; plan {self.plan}")
        load_before = os.getloadavg()
        steps: list[tuple[str, Callable[[], None]]] = [
            ("raw", lambda: self.raw(chosen)),
            ("peer", lambda: self.peers(chosen)),
            ("serve", lambda: self.serve(chosen, modes)),
            ("persist", self.persist),
        ]
        try:
            for group, step in steps:
                wanted = GROUPS[group] + (GROUPS["e2e"] if group == "serve" else [])
                if not any(n in chosen for n in wanted):
                    continue
                try:
                    step()
                except Exception as exc:  # noqa: BLE001 - one broken group must not hide the others
                    log(f"{group}: FAILED: {type(exc).__name__}: {exc}")
                    self.scenarios.append({"name": f"{group} (failed)", "votes_per_s": None, "errors": 1,
                                           "reconciled": False, "failure": f"{type(exc).__name__}: {exc}"})
        finally:
            delete_topics(self.topics)
        from bench.report import write_reports

        scenarios = list(self.scenarios)
        config = self.config_info(chosen, modes)
        machine = machine_info(load_before)
        previous_file = self.args.out / "latest.json"
        if self.args.merge and previous_file.exists():
            previous = json.loads(previous_file.read_text())
            fresh = {s["name"] for s in scenarios}
            # A group's failure record goes once one of its scenarios has been measured again.
            fresh |= {f"{group} (failed)" for group, names in GROUPS.items() if fresh & set(names)}
            kept = [s for s in previous.get("scenarios", []) if s["name"] not in fresh]
            scenarios = kept + scenarios
            order = {name: i for i, name in enumerate(ALL)}

            def position(scenario: dict[str, Any]) -> tuple[int, str, int]:
                base, _, suffix = scenario["name"].partition("[")
                base = "persist" if base.startswith("persist") else base
                rank = order.get(base, len(order))
                if base in GROUPS["serve"]:  # keep each Serve mode's four scenarios together
                    return (order[GROUPS["serve"][0]], suffix, rank)
                return (rank, suffix, 0) if base != "persist" else (rank, scenario["name"], 0)

            scenarios.sort(key=position)
            config["merged_with"] = {"when": previous.get("machine", {}).get("when"),
                                     "kept": [s["name"] for s in kept],
                                     "config": previous.get("config", {}).get("merged_with")
                                     or {k: previous.get("config", {}).get(k) for k in ("plan", "serve_modes")}}
            machine["merged_with_run_of"] = previous.get("machine", {}).get("when")
        data = {
            "scenarios": scenarios,
            "targets": evaluate_targets(scenarios),
            "machine": machine,
            "config": config,
        }
        write_reports(data, self.args.out, chart=not self.args.no_chart)
        failed = [s["name"] for s in self.scenarios if not s.get("reconciled") or s.get("errors")]
        log(f"done in {time.monotonic() - self.started:.0f}s; wrote {self.args.out}/latest.*"
            + (f"; NOT reconciled or with errors: {', '.join(failed)}" if failed else ""))
        return 1 if failed else 0

    def config_info(self, chosen: list[str], modes: list[str]) -> dict[str, Any]:
        app = self.config["applications"][0]
        return {
            "scenarios": chosen, "serve_modes": modes, "quick": self.args.quick,
            "plan": vars(self.plan), "serve_config": str(self.args.serve_config.relative_to(ROOT)
                                                         if self.args.serve_config.is_relative_to(ROOT)
                                                         else self.args.serve_config),
            "deployments": app.get("deployments"),
            "kafka_linger_ms": app.get("args", {}).get("kafka_linger_ms", "default (2.0)"),
            "overrides": {"ingress_max_ongoing": self.args.ingress_max_ongoing,
                          "ingress_replicas": self.args.ingress_replicas,
                          "pool_replicas": self.args.pool_replicas, "app_args": self.args.app_arg},
            "loadgen": "bench.loadgen: raw HTTP/1.1 keep-alive on uvloop / grpc.aio, closed loop, "
                       "pre-encoded bodies; one process",
        }


# ---- summaries and targets -------------------------------------------------------------------


def clear_votes_keys(client: redis.Redis) -> None:
    """Every `votes:*` key the app keeps (counters, replay guard, and whatever it adds later)."""
    keys = list(client.scan_iter(match="votes:*", count=500))
    if keys:
        client.delete(*keys)


def replica_counts(sessions: list[int]) -> dict[str, int]:
    """Serve replicas alive in our own `serve run` (autoscaling changes them between repeats)."""
    from bench.common import classify

    counts: dict[str, int] = {}
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(proc.pid) in sessions:
                kind = classify(proc)
                if kind in ("serve_ingress_replica", "serve_pool_replica", "serve_proxy"):
                    counts[kind] = counts.get(kind, 0) + 1
    return counts


def short(result: dict[str, Any]) -> str:
    parts = [f"{result.get('votes_per_s')} votes/s"]
    if result.get("p99_ms") is not None:
        parts.append(f"p50 {result.get('p50_ms')} ms, p99 {result.get('p99_ms')} ms")
    parts.append(f"errors {result.get('errors')}")
    parts.append("reconciled" if result.get("reconciled") else f"NOT reconciled ({result.get('reconciliation')})")
    if result.get("failure"):
        parts.append(result["failure"])
    if result.get("replicas_at_end"):
        parts.append(f"replicas {result['replicas_at_end']}")
    return "; ".join(parts)


def summarize_runs(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    def stat(key: str) -> tuple[float | None, float | None, float | None]:
        values = [r[key] for r in runs if r.get(key) is not None]
        if not values:
            return None, None, None
        return round(statistics.median(values), 2), round(min(values), 2), round(max(values), 2)

    scenario: dict[str, Any] = {"name": name}
    for key in ("votes_per_s", "p50_ms", "p99_ms"):
        median, low, high = stat(key)
        scenario[key] = median
        scenario[f"{key}_min"] = low
        scenario[f"{key}_max"] = high
    rates = [r["votes_per_s"] for r in runs if r.get("votes_per_s")]
    scenario["spread_pct"] = (round(100 * (max(rates) - min(rates)) / statistics.median(rates), 1)
                              if len(rates) > 1 else 0.0)
    scenario["errors"] = sum(int(r.get("errors") or 0) for r in runs)
    scenario["reconciled"] = bool(runs) and all(r.get("reconciled") for r in runs)
    scenario["repeats"] = len(runs)
    cpu: dict[str, float] = {}
    for run in runs:
        for part, seconds in (run.get("cpu_s") or {}).items():
            cpu[part] = cpu.get(part, 0.0) + seconds
    accepted = sum(int(r.get("accepted") or r.get("accepted_votes") or 0) for r in runs)
    if accepted and cpu:
        scenario["cpu_us_per_vote"] = {part: round(1e6 * s / accepted, 1) for part, s in sorted(cpu.items())
                                       if s > 0.05}
    # Scenarios that measure their own steady-state window (sinks, persist) replace the whole-repeat
    # figures of the parts they measured: setup and verification (count, drop) are not the work.
    window_votes = sum(int((r.get("cpu_window") or {}).get("votes") or 0) for r in runs)
    if window_votes:
        window: dict[str, float] = {}
        for run in runs:
            for part, seconds in ((run.get("cpu_window") or {}).get("cpu_s") or {}).items():
                window[part] = window.get(part, 0.0) + seconds
        scenario.setdefault("cpu_us_per_vote", {}).update(
            {part: round(1e6 * s / window_votes, 1) for part, s in window.items()})
    scenario["runs"] = runs
    return scenario


def evaluate_targets(scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, for each Serve mode measured (serve_* names carry a [mode] suffix)."""
    by = {s["name"]: s for s in scenarios}

    def rate(name: str) -> float | None:
        return (by.get(name) or {}).get("votes_per_s")

    targets: list[dict[str, Any]] = []

    def ratio_target(numerator: str, denominator: str, factor: float) -> None:
        a, b = rate(numerator), rate(denominator)
        if a is None or b is None:
            return
        targets.append({"target": f"{numerator} >= {factor} x {denominator}", "met": a >= factor * b,
                        "detail": f"{a:,.0f} vs {factor} x {b:,.0f} = {factor * b:,.0f} (ratio {a / b:.2f})"})

    suffixes = sorted({s["name"][len(base):] for s in scenarios for base in GROUPS["serve"]
                       if s["name"].startswith(base)}, key=lambda x: (x != "", x))
    for suffix in suffixes:
        ratio_target(f"serve_http_single{suffix}", "plain_http_peer", 0.25)
        ratio_target(f"serve_grpc_single{suffix}", "plain_grpc_peer", 0.25)
        ratio_target(f"serve_http_batch{suffix}", "kafka_producer_raw", 0.3)
        ratio_target(f"serve_grpc_batch{suffix}", "kafka_producer_raw", 0.3)
    persists = sorted((s for s in scenarios if s["name"].startswith("persist_x")),
                      key=lambda s: s.get("replicas", 0))
    pool = max(persists, key=lambda s: s.get("votes_per_s") or 0) if persists else None
    if pool and pool.get("votes_per_s"):
        ingest = [(s["name"], s["votes_per_s"]) for s in scenarios
                  if s["name"].startswith("serve_") and s.get("votes_per_s")]
        if ingest:
            top_name, top = max(ingest, key=lambda item: item[1])
            targets.append({"target": "persist (best pool size) >= the highest ingestion rate",
                            "met": pool["votes_per_s"] >= top,
                            "detail": f"{pool['name']} {pool['votes_per_s']:,.0f} vs {top_name} {top:,.0f}"})
        sinks = [(n, rate(n)) for n in ("ferretdb_raw", "redis_raw") if rate(n)]
        if sinks:
            sink_name, limit = min(sinks, key=lambda item: item[1] or 0)
            assert limit is not None
            targets.append({"target": "persist (best pool size) >= 0.5 x the sink's own limit",
                            "met": pool["votes_per_s"] >= 0.5 * limit,
                            "detail": f"{pool['name']} {pool['votes_per_s']:,.0f} vs 0.5 x {sink_name} "
                                      f"{limit:,.0f} = {0.5 * limit:,.0f}"})
    e2e = by.get("e2e_latency")
    if e2e and e2e.get("p99_ms") is not None:
        targets.append({"target": "e2e_latency p99 < 1 s", "met": e2e["p99_ms"] < 1000,
                        "detail": f"p99 {e2e['p99_ms']:,.0f} ms at {e2e.get('rate_votes_per_s')} votes/s"})
    bad = [s["name"] for s in scenarios if s.get("errors") or not s.get("reconciled")]
    targets.append({"target": "zero errors, exact reconciliation in every scenario", "met": not bad,
                    "detail": "all clean" if not bad else f"not clean: {', '.join(bad)}"})
    return targets


def machine_info(load_before: tuple[float, float, float]) -> dict[str, Any]:
    import ray

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(), "cpu_model": model, "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(), "python": platform.python_version(), "ray": ray.__version__,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "note": "shared machine: other sessions' load shows in loadavg and in each repeat's loadavg_1m_before",
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    try:
        return bench.run()
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
