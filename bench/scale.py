"""`make bench-scale`: how ingestion scales with ingress replicas, and persisting with consumers.

    .venv/bin/python -m bench.scale                   # 1,2,4,8 replicas; 1-6 consumers; 3 repeats
    .venv/bin/python -m bench.scale --quick           # a smoke: 1,2 replicas; 1,2 consumers
    .venv/bin/python -m bench.scale --replicas 1,2 --series http_batch --out /tmp/scale

Ingest: for each N in --replicas, a fresh `serve run` of `bench.apps:build_ingest_only`
(VoteIngress as `make run` builds it, the pool idle: the votes stay in Kafka) in the haproxy
mode `make run` ships, with VoteIngress fixed at N replicas. Each series (HTTP and gRPC single
votes, HTTP batches of 1000; --series) runs --repeats bounded windows from P load-generator
processes (one per core but one, or --loadgen-procs) that together keep N x a per-replica
concurrency in flight. Every repeat reconciles: votes accepted == records in Kafka, no errors.

Persist: a 6-partition topic preloaded once, then 1..6 consumer processes (`bench.pool_worker`,
the VotePersister loop) drain it in a fresh group per repeat (bench.persist.persist_run):
records == counted in Redis == stored in MongoDB.

Each point also records the CPU of every process class as a share of the machine's cores (the
core count is read, not assumed), so that the report says where saturation comes from.
Efficiency(N) = rate(N) / (N x rate(1)). Writes scale.{json,md,png} to --out (bench/results).
Own topics, groups, MongoDB databases and Redis database (--redis-db, default 8), own ports
(--http-port, --grpc-port, --port-block); all removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
import redis
import yaml

from bench.common import (
    KAFKA,
    MONGO_URL,
    REDIS_HOST,
    REDIS_PORT,
    RESULTS,
    ROOT,
    CpuMeter,
    drop_mongo_database,
    log,
    stack_pids,
)
from bench.run import machine_info, replica_counts, summarize_runs
from bench.scale_load import LoadFleet, LoadSpec, concurrency_per_process, loadgen_processes
from bench.scale_report import add_efficiency, cpu_shares, point_cpu, write_reports
from devkit.kafka import PARTITIONS, create_topics, delete_topics
from devkit.names import RunNames
from devkit.net import port_open
from devkit.waiting import wait_until
from serve_app.serve_env import PORT_BLOCK_SIZE, SERVE_ENV

SERIES: dict[str, tuple[str, str]] = {  # name: (protocol, kind)
    "http_single": ("http", "single"),
    "grpc_single": ("grpc", "single"),
    "http_batch": ("http", "batch"),
    "grpc_batch": ("grpc", "batch"),
}
DEFAULT_SERIES = "http_single,grpc_single,http_batch"
SERVE_MODE = "haproxy"  # what `make run` ships, with serve_app.serve_env.SERVE_ENV on top
INGEST_APP = "bench.apps:build_ingest_only"
START_RETRY_PAUSE_S = 15.0
# Direct ingress gives each replica one HTTP port of the 20 in the instance's port block.
MAX_REPLICAS = 20


# ---- arguments ---------------------------------------------------------------------------


def count_list(text: str, *, what: str, maximum: int, why_maximum: str) -> list[int]:
    """'1,2,4,8' -> [1, 2, 4, 8]: whole numbers from 1 to maximum, no repeats; else a clear error."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or not all(items):
        raise argparse.ArgumentTypeError(
            f"{what}: give a comma-separated list of whole numbers, e.g. 1,2,4 (got {text!r})"
        )
    values = []
    for item in items:
        try:
            value = int(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}: {item!r} is not a whole number") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{what}: {value} is not a count; the least is 1")
        if value > maximum:
            raise argparse.ArgumentTypeError(
                f"{what}: {value} is more than {maximum} ({why_maximum})"
            )
        values.append(value)
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{what}: {text!r} names a count twice")
    return sorted(values)


def replica_list(text: str) -> list[int]:
    return count_list(
        text,
        what="ingress replicas",
        maximum=MAX_REPLICAS,
        why_maximum="the port block gives direct ingress 20 HTTP ports",
    )


def consumer_list(text: str) -> list[int]:
    return count_list(
        text,
        what="consumers",
        maximum=PARTITIONS,
        why_maximum=f"the topic has {PARTITIONS} partitions: another consumer would idle",
    )


def series_list(text: str) -> list[str]:
    names = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [name for name in names if name not in SERIES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"series: unknown {unknown or text!r}; known: {', '.join(SERIES)}"
        )
    return list(dict.fromkeys(names))


def _number(text: str, kind: type, what: str, least: float, strict: bool) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: {text!r} is not a number") from None
    if (value <= least) if strict else (value < least):
        bound = f"more than {least}" if strict else f"at least {least}"
        raise argparse.ArgumentTypeError(f"{what}: {text} is out of range (must be {bound})")
    return value


def positive_int(what: str) -> Callable[[str], int]:
    return lambda text: _number(text, int, what, 1, strict=False)


def seconds(what: str, *, zero_ok: bool) -> Callable[[str], float]:
    return lambda text: _number(text, float, what, 0.0, strict=not zero_ok)


def port(what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _number(text, int, what, 1, strict=False)
        if value > 65535 - PORT_BLOCK_SIZE:
            raise argparse.ArgumentTypeError(
                f"{what}: {value} is not a usable port (1-{65535 - PORT_BLOCK_SIZE})"
            )
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke: replicas 1,2; consumers 1,2; tiny windows; one repeat",
    )
    parser.add_argument(
        "--replicas", type=replica_list, help="ingress replica counts (default 1,2,4,8)"
    )
    parser.add_argument("--consumers", type=consumer_list, help="pool sizes (default 1,2,3,4,5,6)")
    parser.add_argument(
        "--series",
        type=series_list,
        default=series_list(DEFAULT_SERIES),
        help=f"ingest series, comma-separated (default {DEFAULT_SERIES}; known: "
        f"{', '.join(SERIES)})",
    )
    parser.add_argument("--skip-ingest", action="store_true", help="measure persist only")
    parser.add_argument("--skip-persist", action="store_true", help="measure ingest only")
    parser.add_argument(
        "--repeats", type=positive_int("repeats"), help="repeats per point (default 3)"
    )
    parser.add_argument(
        "--warmup",
        type=seconds("warmup", zero_ok=True),
        help="seconds of warm-up before each measured window (default 3)",
    )
    parser.add_argument(
        "--duration",
        type=seconds("duration", zero_ok=False),
        help="seconds of each measured window (default 8)",
    )
    parser.add_argument(
        "--loadgen-procs",
        type=positive_int("load-generator processes"),
        help="load-generator processes (default: one per core but one, at least 1)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int("concurrency"),
        help="single-vote requests in flight per ingress replica (default 32)",
    )
    parser.add_argument(
        "--batch-concurrency",
        type=positive_int("batch concurrency"),
        help="batch requests in flight per ingress replica (default 4)",
    )
    parser.add_argument(
        "--persist-records",
        type=positive_int("persist records"),
        help="records preloaded for persist (default 40000)",
    )
    parser.add_argument("--http-port", type=port("http port"), default=20040)
    parser.add_argument("--grpc-port", type=port("grpc port"), default=20041)
    parser.add_argument(
        "--port-block",
        type=port("port block"),
        default=int(os.environ.get("VOTES_BENCH_PORT_BLOCK", "39500")),
        help=f"first of the {PORT_BLOCK_SIZE} ports Serve's direct ingress and HAProxy "
        "take (default: VOTES_BENCH_PORT_BLOCK, else 39500)",
    )
    parser.add_argument(
        "--redis-db",
        type=_redis_db,
        default=8,
        help="Redis database of the persist counters (and the app's), default 8",
    )
    parser.add_argument("--serve-config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where scale.{json,md,png} go")
    parser.add_argument("--no-chart", action="store_true")
    return parser


def _redis_db(text: str) -> int:
    value = _number(text, int, "redis db", 0, strict=False)
    if value > 15:
        raise argparse.ArgumentTypeError(f"redis db: {value} is not one of Redis's databases 0-15")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.http_port == args.grpc_port:
        parser.error(f"--http-port and --grpc-port are both {args.http_port}: give two ports")
    block = range(args.port_block, args.port_block + PORT_BLOCK_SIZE)
    clash = [p for p in (args.http_port, args.grpc_port) if p in block]
    if clash:
        parser.error(f"port {clash[0]} is inside the port block {block.start}-{block.stop - 1}")
    if args.skip_ingest and args.skip_persist:
        parser.error("--skip-ingest and --skip-persist together leave nothing to measure")
    if args.replicas is not None and 1 not in args.replicas:
        parser.error("--replicas must include 1: the efficiency divides by the rate at 1 replica")
    if args.consumers is not None and 1 not in args.consumers:
        parser.error("--consumers must include 1: the efficiency divides by the rate at 1 consumer")
    return args


@dataclass
class Plan:
    replicas: list[int]
    consumers: list[int]
    series: list[str]
    repeats: int
    warmup_s: float
    duration_s: float
    loadgen_processes: int
    concurrency_per_replica: int
    batch_concurrency_per_replica: int
    persist_records: int
    cores: int


def make_plan(args: argparse.Namespace, cores: int) -> Plan:
    quick = args.quick

    def chosen(value: Any, full: Any, smoke: Any) -> Any:
        return value if value is not None else (smoke if quick else full)

    return Plan(
        replicas=chosen(args.replicas, [1, 2, 4, 8], [1, 2]),
        consumers=chosen(args.consumers, list(range(1, PARTITIONS + 1)), [1, 2]),
        series=args.series,
        repeats=chosen(args.repeats, 3, 1),
        warmup_s=chosen(args.warmup, 3.0, 1.0),
        duration_s=chosen(args.duration, 8.0, 3.0),
        loadgen_processes=loadgen_processes(cores, args.loadgen_procs),
        concurrency_per_replica=chosen(args.concurrency, 32, 16),
        batch_concurrency_per_replica=chosen(args.batch_concurrency, 4, 2),
        persist_records=chosen(args.persist_records, 40_000, 10_000),
        cores=cores,
    )


def ingress_actor_options(config: dict[str, Any], replicas: int, cpus: int) -> dict[str, Any]:
    """config.yaml's VoteIngress ray_actor_options (runtime_env kept) with num_cpus lowered so that
    `replicas` of them fit in the `cpus` Ray has: a reservation, not a limit on what they use."""
    deployment = next(
        (d for d in config["applications"][0].get("deployments", []) if d["name"] == "VoteIngress"),
        None,
    )
    if deployment is None:
        raise ValueError("the Serve config has no VoteIngress deployment")
    options = copy.deepcopy(deployment.get("ray_actor_options") or {})
    configured = float(options.get("num_cpus", 1.0))
    fit = math.floor(100 * cpus / replicas) / 100
    options["num_cpus"] = min(configured, fit)
    return options


# ---- the run -----------------------------------------------------------------------------


def haproxy_replicas_up(state_dir: Path) -> dict[str, int]:
    """Replica servers UP in each HAProxy backend (`show stat` on its admin socket, which Serve
    puts in a folder of its own under state_dir); {} while there is no socket to ask."""
    up: dict[str, int] = {}
    for socket_path in state_dir.glob("*/admin.sock"):
        with (
            contextlib.suppress(OSError),
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock,
        ):
            sock.settimeout(2)
            sock.connect(str(socket_path))
            sock.sendall(b"show stat\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            up |= replicas_up_in_stat(b"".join(chunks).decode(errors="replace"))
    return up


def replicas_up_in_stat(csv_text: str) -> dict[str, int]:
    """From HAProxy's `show stat` CSV: per backend, the Serve replica servers whose status is UP
    (not the fallback proxy, a backup server that is UP whenever Serve's proxy is)."""
    lines = csv_text.splitlines()
    header = lines[0].lstrip("# ").split(",") if lines else []
    if "status" not in header:
        return {}
    status = header.index("status")
    up: dict[str, int] = {}
    for line in lines[1:]:
        fields = line.split(",")
        if len(fields) <= status or not fields[1].startswith("SERVE_REPLICA"):
            continue
        up.setdefault(fields[0], 0)
        if fields[status].startswith("UP"):
            up[fields[0]] += 1
    return up


class MachineSampler:
    """The machine's busy CPU seconds, sampled every 0.1 s (for windows known only afterwards)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scale-sampler", daemon=True)

    @staticmethod
    def busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.busy()))
            self._stop.wait(0.1)

    def __enter__(self) -> MachineSampler:  # noqa: PYI034 - final class
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(2)

    def busy_between(self, start: float, end: float) -> float | None:
        """Busy CPU seconds of the whole machine between two moments (nearest samples)."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return None
        (t0, b0), (t1, b1) = inside[0], inside[-1]
        return (b1 - b0) * (end - start) / max(1e-9, t1 - t0)


class ScaleBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.config = yaml.safe_load(args.serve_config.read_text())
        self.cores = os.cpu_count() or 1
        self.plan = make_plan(args, self.cores)
        self.names = RunNames("scale")
        self.topics: list[str] = []
        self.mongo_databases: list[str] = []
        self.groups: list[str] = []
        self.ingest_points: list[dict[str, Any]] = []
        self.persist_points: list[dict[str, Any]] = []
        self.ingress_num_cpus: dict[int, float] = {}
        self.failures: list[str] = []
        self.started = time.monotonic()

    # -- shared --

    def check_stack(self) -> None:
        for name, port_number in (("Kafka", 9092), ("Redis", 6379), ("MongoDB/FerretDB", 27017)):
            if not port_open("127.0.0.1", port_number):
                raise SystemExit(
                    f"{name} is not answering on 127.0.0.1:{port_number}: run `make stack-up`"
                )

    def check_redis_db(self) -> None:
        """The Redis database must be empty of anything but the app's own `votes:*` keys."""
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=self.args.redis_db)
        try:
            foreign = [
                key
                for key in client.scan_iter(count=200)
                if not key.decode(errors="replace").startswith("votes:")
            ]
        finally:
            client.close()
        if foreign:
            raise SystemExit(
                f"Redis database {self.args.redis_db} holds other data ({foreign[:3]}): "
                "pick another with --redis-db"
            )

    def clear_redis_db(self) -> None:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=self.args.redis_db)
        try:
            keys = list(client.scan_iter(match="votes:*", count=500))
            if keys:
                client.delete(*keys)
        finally:
            client.close()

    def repeats(self, name: str, one: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
        """The repeats of a point; one during which a stack part restarted runs again, once."""
        runs = []
        for index in range(self.plan.repeats):
            for attempt in range(2):
                before = stack_pids()
                try:
                    result = one()
                except Exception as exc:  # noqa: BLE001 - reported as a failed repeat
                    result = {
                        "votes_per_s": None,
                        "errors": 1,
                        "reconciled": False,
                        "failure": f"{type(exc).__name__}: {exc}",
                    }
                disturbed = stack_pids() != before
                if disturbed and attempt == 0:
                    log(f"{name} #{index + 1}: a stack part restarted meanwhile; running it again")
                    continue
                result["disturbed"] = disturbed
                break
            log(f"{name} #{index + 1}/{self.plan.repeats}: {describe(result)}")
            runs.append(result)
        return runs

    # -- ingest --

    def serve_args(self, replicas: int) -> tuple[dict[str, Any], str]:
        topic = self.names.topic_for(f"ingest-x{replicas}")
        dlq = topic + ".dlq"
        self.topics += [topic, dlq]
        create_topics([topic])
        create_topics([dlq], partitions=1)
        database = self.names.mongo_database_for(f"ingest_x{replicas}")
        self.mongo_databases.append(database)
        return {
            "kafka_bootstrap_servers": KAFKA,
            "kafka_topic": topic,
            "kafka_dlq_topic": dlq,
            "kafka_consumer_group": self.names.group_for(f"ingest-x{replicas}"),
            "redis_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.args.redis_db}",
            "mongo_url": MONGO_URL,
            "mongo_database": database,
        }, topic

    def ingest(self) -> None:
        for replicas in self.plan.replicas:
            try:
                self.ingest_at(replicas)
            except Exception as exc:  # noqa: BLE001 - the other replica counts still get measured
                log(f"ingest x{replicas}: FAILED: {type(exc).__name__}: {exc}")
                self.failures.append(f"ingest x{replicas}: {type(exc).__name__}: {exc}")

    def ingest_at(self, replicas: int) -> None:
        """A fresh Serve instance with `replicas` ingress replicas; every series on it."""
        args, topic = self.serve_args(replicas)
        actor_options = ingress_actor_options(self.config, replicas, self.cores)
        self.ingress_num_cpus[replicas] = actor_options["num_cpus"]
        overrides = {
            "VoteIngress": {"num_replicas": replicas, "ray_actor_options": actor_options},
            # The idle pool: one replica that reserves no CPU.
            "VotePersister": {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0}},
        }
        log(
            f"ingest x{replicas}: starting Serve with {replicas} ingress replica(s) "
            f"(num_cpus {actor_options['num_cpus']} each)"
        )
        started = time.monotonic()
        instance = self.start_serve(args, overrides)
        try:
            self.wait_for_replicas(instance, replicas)
            startup_s = round(time.monotonic() - started, 1)
            log(f"ingest x{replicas}: {replicas} replica(s) up in {startup_s} s")
            for series in self.plan.series:
                name = f"{series}_x{replicas}"

                def one(s: str = series, i: Any = instance) -> dict[str, Any]:
                    return self.ingest_repeat(s, replicas, i, topic)

                runs = self.repeats(name, one)
                busy, shares = point_cpu(runs)
                self.ingest_points.append(
                    summarize_runs(name, runs)
                    | {
                        "series": series,
                        "size": replicas,
                        "busy_share": busy,
                        "cpu_share": shares,
                        "startup_s": startup_s,
                        "num_cpus_per_replica": actor_options["num_cpus"],
                    }
                )
        finally:
            instance.stop()
            self.clear_redis_db()

    def start_serve(self, args: dict[str, Any], overrides: dict[str, Any]) -> Any:
        """A started ServeInstance, tried up to 3 times: on a loaded machine Ray's node start can
        time out (Ray 2.60 gives its raylet a fixed 30 s to register)."""
        from bench.serve_instance import ServeInstance

        attempts = 3
        for attempt in range(1, attempts + 1):
            self.wait_for_port_block()
            instance = ServeInstance(
                args=args,
                mode=SERVE_MODE,
                http_port=self.args.http_port,
                grpc_port=self.args.grpc_port,
                config_path=self.args.serve_config,
                deployment_overrides=overrides,
                import_path=INGEST_APP,
                port_block=self.args.port_block,
                # Exactly `make run`'s environment. Serve's fallback proxy
                # gets ports of the block (private_instance): decision 0017.
                extra_env=dict(SERVE_ENV),
            )
            try:
                instance.start()  # stops what it started when it fails with an Exception
                return instance
            except (KeyboardInterrupt, SystemExit):  # Ctrl-C or SIGTERM while starting
                instance.stop()
                raise
            except Exception as exc:  # retried, then raised
                if attempt == attempts:
                    raise
                log(
                    f"Serve did not start ({type(exc).__name__}: {exc}); try {attempt + 1} of "
                    f"{attempts} in {START_RETRY_PAUSE_S:.0f} s"
                )
                time.sleep(START_RETRY_PAUSE_S)
        raise AssertionError("not reached")

    def wait_for_port_block(self, timeout_s: float = 120.0) -> None:
        """Wait (bounded) until nothing listens in our port block: Ray's processes take random
        ports, and one of another instance's can sit in the block for a while."""
        block = range(self.args.port_block, self.args.port_block + PORT_BLOCK_SIZE)
        deadline = time.monotonic() + timeout_s
        said = False
        while holders := listeners(block):
            if time.monotonic() > deadline:
                return  # ServeInstance refuses to start and says which ports
            if not said:
                log(
                    f"port block {block.start}-{block.stop - 1} in use by {holders}: waiting up to "
                    f"{timeout_s:.0f} s"
                )
                said = True
            time.sleep(2)

    def wait_for_replicas(self, instance: Any, replicas: int, timeout_s: float = 240) -> None:
        """All N replica processes alive and HAProxy routing to N servers of a backend."""
        session = instance.proc.pid
        wait_until(
            lambda: replica_counts([session]).get("serve_ingress_replica", 0) >= replicas,
            timeout_s,
            f"{replicas} ingress replica processes",
            every_s=1,
            alive=instance.proc.alive,
        )
        # Both backends (HTTP and gRPC) route to every replica.
        try:
            wait_until(
                lambda: (
                    min(haproxy_replicas_up(instance.haproxy_dir).values(), default=0) >= replicas
                ),
                60,
                f"HAProxy routing to {replicas} replicas",
                every_s=1,
                alive=instance.proc.alive,
            )
        except Exception as exc:  # noqa: BLE001 - the processes are up; say so and measure anyway
            log(
                f"could not confirm HAProxy routes to all replicas ({exc}): "
                f"replicas UP per backend {haproxy_replicas_up(instance.haproxy_dir)}"
            )

    def ingest_repeat(
        self, series: str, replicas: int, instance: Any, topic: str
    ) -> dict[str, Any]:
        """One repeat: P processes load the instance; CPU over the measured window; reconcile."""
        plan = self.plan
        protocol, kind = SERIES[series]
        per_replica = (
            plan.batch_concurrency_per_replica if kind == "batch" else plan.concurrency_per_replica
        )
        per_process = concurrency_per_process(per_replica, replicas, plan.loadgen_processes)
        spec = LoadSpec(
            protocol=protocol,
            kind=kind,
            host="127.0.0.1",
            http_port=instance.http_port,
            grpc_target=instance.grpc_target,
            concurrency=per_process,
            warmup_s=plan.warmup_s,
            duration_s=plan.duration_s,
            tag=f"{self.names.run_id}{series[0]}{time.monotonic_ns() % 10**8}",
        )
        ends_before = partition_ends(topic)
        with LoadFleet(spec, plan.loadgen_processes) as fleet:
            fleet.prepare()
            pids = {pid: part for part, pid in stack_pids().items() if pid}
            meter = CpuMeter(pids | dict.fromkeys(fleet.pids, "loadgen"), [instance.proc.pid])
            go = fleet.go()
            time.sleep(max(0.0, go + plan.warmup_s - time.monotonic()))
            meter.start()
            time.sleep(max(0.0, go + plan.warmup_s + plan.duration_s - time.monotonic()))
            cpu_s = meter.stop()
            result = fleet.collect()
        ends_after = partition_ends(topic)
        records = sum(ends_after.values()) - sum(ends_before.values())
        accepted = result.accepted_votes
        text = f"accepted {accepted} == records in Kafka {records}"
        if records != accepted:  # say whether the extra records repeat vote_ids (retried requests)
            read, distinct = distinct_keys(topic, ends_before, ends_after)
            text += f" (of the {read} read, {distinct} distinct vote_ids)"
        return result.summary() | {
            "concurrency_total": per_process * plan.loadgen_processes,
            "concurrency_per_process": per_process,
            "loadgen_processes": plan.loadgen_processes,
            "kafka_records": records,
            "reconciled": records == accepted and not result.error_count,
            "reconciliation": text,
            "wall_s": round(meter.wall_s, 2),
            "cpu_share": cpu_shares(cpu_s, meter.wall_s, self.cores),
            # CPU per vote over the same window as the votes (summarize_runs reads it).
            "cpu_window": {"votes": result.window_votes, "cpu_s": cpu_s},
        }

    # -- persist --

    def persist(self) -> None:
        from bench.persist import persist_run, preload

        topic = self.names.topic_for("persist")
        self.topics += [topic, topic + ".dlq"]
        create_topics([topic])
        create_topics([topic + ".dlq"], partitions=1)
        log(f"persist: preloading {self.plan.persist_records} records into {PARTITIONS} partitions")
        records = preload(topic, self.plan.persist_records)
        timeout = max(60.0, records / 200)
        for consumers in self.plan.consumers:

            def one(c: int = consumers) -> dict[str, Any]:
                run_id = time.monotonic_ns() % 10**8
                database = self.names.mongo_database_for(f"persist_{c}_{run_id}")
                self.mongo_databases.append(database)  # persist_run drops it; this is a backstop
                group = self.names.group_for(f"persist-{c}-{run_id}")
                self.groups.append(group)
                with MachineSampler() as sampler:
                    called = time.monotonic()
                    result = persist_run(
                        topic, group, database, self.args.redis_db, records, c, timeout
                    )
                return result | self.persist_cpu(result, sampler, called)

            name = f"persist_x{consumers}"
            runs = self.repeats(name, one)
            busy, shares = point_cpu(runs)
            self.persist_points.append(
                summarize_runs(name, runs)
                | {
                    "series": "persist",
                    "size": consumers,
                    "busy_share": busy,
                    "cpu_share": shares,
                    "records": records,
                }
            )

    def persist_cpu(
        self, result: dict[str, Any], sampler: MachineSampler, called: float
    ) -> dict[str, Any]:
        """Shares of the machine during the drain (first counted vote to the last)."""
        window = result.get("cpu_window") or {}
        drain_s = float(result.get("drain_s") or 0)
        if not window.get("votes") or drain_s <= 0:
            return {}
        ours = dict(window.get("cpu_s") or {})
        start = called + float(result.get("startup_s") or 0)
        machine = sampler.busy_between(start, start + drain_s)
        if machine is not None:  # the sampled window is approximate: never more than all cores
            machine = min(machine, drain_s * self.cores)
            ours["other_processes"] = round(max(0.0, machine - sum(ours.values())), 3)
        return {"cpu_share": cpu_shares(ours, drain_s, self.cores)}

    # -- all --

    def run(self) -> int:
        self.check_stack()
        self.check_redis_db()
        plan = self.plan
        log(f"run {self.names.run_id} on {self.cores} cores: {plan}")
        load_before = os.getloadavg()
        failures = self.failures
        try:
            for what, step, skip in (
                ("ingest", self.ingest, self.args.skip_ingest),
                ("persist", self.persist, self.args.skip_persist),
            ):
                if skip:
                    continue
                try:
                    step()
                except Exception as exc:  # noqa: BLE001 - one broken part must not hide the other
                    log(f"{what}: FAILED: {type(exc).__name__}: {exc}")
                    failures.append(f"{what}: {type(exc).__name__}: {exc}")
        finally:
            log("cleaning up: topics, consumer groups, MongoDB databases, Redis keys")
            delete_topics(self.topics)
            delete_groups(self.groups)
            self.clear_redis_db()
            for database in self.mongo_databases:
                drop_mongo_database(database, timeout_s=60)
        add_efficiency(self.ingest_points)
        add_efficiency(self.persist_points)
        data = {
            "ingest": self.ingest_points,
            "persist": self.persist_points,
            "machine": machine_info(load_before),
            "config": {
                "quick": self.args.quick,
                "plan": asdict(plan),
                "serve_mode": SERVE_MODE,
                "app": INGEST_APP,
                "ingress_num_cpus": self.ingress_num_cpus,
                "loadgen_processes": plan.loadgen_processes,
                "persist_records": plan.persist_records,
                "partitions": PARTITIONS,
                "failures": failures,
            },
        }
        write_reports(data, self.args.out, chart=not self.args.no_chart)
        unclean = [
            p["name"]
            for p in [*self.ingest_points, *self.persist_points]
            if p.get("errors") or not p.get("reconciled")
        ]
        log(
            f"done in {time.monotonic() - self.started:.0f} s; wrote {self.args.out}/scale.*"
            + (f"; NOT clean: {', '.join(unclean)}" if unclean else "")
            + (f"; failed: {'; '.join(failures)}" if failures else "")
        )
        return 1 if unclean or failures else 0


def listeners(ports: range) -> dict[int, str]:
    """Ports of the range something listens on (TCP), with the listener's pid and name."""
    found: dict[int, str] = {}
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in ports:
                name = "?"
                with contextlib.suppress(psutil.Error):
                    name = psutil.Process(conn.pid).name() if conn.pid else "?"
                found[conn.laddr.port] = f"pid {conn.pid} {name}"
    return found


def partition_ends(topic: str) -> dict[int, int]:
    """Each partition's high watermark: the offset its next record gets."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": f"scale-ends-{os.getpid()}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def distinct_keys(
    topic: str, start: dict[int, int], end: dict[int, int], timeout_s: float = 60.0
) -> tuple[int, int]:
    """Records read between two sets of partition ends, and how many distinct keys (vote_ids)
    they carry: fewer keys than records means some vote was written twice. Bounded in time."""
    from confluent_kafka import Consumer, TopicPartition

    wanted = {p: end[p] for p in end if end[p] > start.get(p, 0)}
    if not wanted:
        return 0, 0
    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": f"scale-keys-{os.getpid()}",
            "enable.auto.commit": False,
        }
    )
    keys: set[bytes] = set()
    read = 0
    try:
        consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in wanted])
        deadline = time.monotonic() + timeout_s
        while wanted and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is not None or message.partition() not in wanted:
                    continue
                if message.offset() < wanted[message.partition()]:
                    read += 1
                    keys.add(message.key() or b"")
                if message.offset() + 1 >= wanted[message.partition()]:
                    wanted.pop(message.partition())
    finally:
        consumer.close()
    return read, len(keys)


def delete_groups(groups: list[str]) -> None:
    """Delete our consumer groups, best effort (their consumers have stopped)."""
    if not groups:
        return
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": KAFKA})
    for future in admin.delete_consumer_groups(groups, request_timeout=30).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)


def describe(result: dict[str, Any]) -> str:
    parts = [f"{result.get('votes_per_s')} votes/s"]
    if result.get("p99_ms") is not None:
        parts.append(f"p99 {result['p99_ms']} ms")
    share = result.get("cpu_share")
    if share:
        parts.append(f"cores {100 * sum(share.values()):.0f}% busy")
    parts.append(f"errors {result.get('errors')}")
    parts.append(
        "reconciled"
        if result.get("reconciled")
        else f"NOT reconciled ({result.get('reconciliation')})"
    )
    if result.get("failure"):
        parts.append(result["failure"])
    return "; ".join(parts)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = ScaleBench(args)
    # A plain SIGTERM (timeout, a closed terminal) would skip the clean-up in the finally blocks.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return bench.run()
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
