"""Soak: locust at ~70% of the measured single-vote capacity for 10 minutes on both paths, with
a private Prometheus scraping Ray, and every dashboard panel checked against live data.

    make soak                                          # = python -m loadtest.soak (600 s)
    make soak SOAK_ARGS="--duration 60"                # a short check
    .venv/bin/python -m loadtest.soak --rate 100       # a fixed rate instead of 70% of capacity
    .venv/bin/python -m loadtest.soak --host http://127.0.0.1:8000 --grpc-target 127.0.0.1:9000
                                                       # soak `make run` (nobody else voting)

What it does, in order:
1. starts its own `serve run` (bench.harness.serve_instance.ServeInstance with the environment
   `make run` ships: HAProxy in front of direct ingress) with its own Kafka topics, consumer
   group, MongoDB database and Redis database (9), on HTTP :20030 and gRPC :20031; or uses --host;
2. starts a private Prometheus (loadtest/prometheus.py; Debian's package, installed if missing)
   whose targets are Ray's service-discovery file of that Ray, and waits for its targets;
3. picks the rate: --rate, or --share (0.7) of the best single-vote rate in
   bench/results/latest.json (loadtest/capacity.py), or of a short calibration;
4. runs locust headless (loadtest/soak_locustfile.py: the voters of loadtest/locustfile.py, single
   votes only, each user at a constant rate) for --duration, split between HTTP and gRPC; a few
   seconds in, sends the probes: invalid votes on both paths and undecodable records into the
   topic, so that the rejection and dead-letter panels have something true to show;
5. every --sample-every seconds prints elapsed, votes sent, errors, Kafka lag and RSS; RSS of
   every process class (loadtest/rss.py) is taken after the warm-up and at the end of the load;
6. waits for the pool to drain, then reconciles exactly: votes accepted == records in Kafka (less
   the probes) == counted in Redis == documents in MongoDB == GET /results increase;
7. runs every PromQL target of the Pipeline dashboard against the Prometheus over the load's
   window, and every Redis query of the Contest dashboard against the live Redis database
   (loadtest/panels.py);
8. writes test-artifacts/soak-report.{md,json} and exits 0 only when: zero errors, the exact
   reconciliation, every panel OK (or allow-listed with its reason), the probes answered as
   expected, and no process class grew its RSS by more than --rss-limit percent.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from loadtest import capacity as cap
from loadtest import panels, rss
from loadtest.prometheus import (
    DEFAULT_LISTEN,
    DEFAULT_SCRAPE_INTERVAL_S,
    PrivatePrometheus,
    PrometheusError,
    service_discovery_file,
    session_dir_of_listener,
    session_dir_of_session,
    wait_for_file,
)

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "loadtest" / "soak_locustfile.py"
ARTIFACTS = ROOT / "test-artifacts"
REPORT_MD = ARTIFACTS / "soak-report.md"
REPORT_JSON = ARTIFACTS / "soak-report.json"
PROBE_INVALID_PER_PATH = 3
PROBE_POISON_RECORDS = 3
# Process classes whose RSS may grow past the limit, and why. Empty until a soak shows one whose
# growth is understood and bounded; every entry needs its reason.
RSS_EXPLAINED: dict[str, str] = {}


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load = parser.add_argument_group("load")
    load.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    load.add_argument(
        "--rate",
        type=float,
        default=None,
        help="total votes/s (default: --share of the measured capacity)",
    )
    load.add_argument(
        "--share",
        type=float,
        default=cap.DEFAULT_SHARE,
        help="share of the single-vote capacity to send (default 0.7)",
    )
    load.add_argument(
        "--grpc-share",
        type=float,
        default=0.5,
        help="share of the votes sent over gRPC; the rest over HTTP (default 0.5)",
    )
    load.add_argument(
        "--max-user-rate",
        type=float,
        default=2.0,
        help="votes/s of one locust user at most (default 2: a vote every 0.5 s)",
    )
    load.add_argument(
        "--bench-results",
        type=Path,
        default=cap.BENCH_RESULTS,
        help="the benchmark's results to take the capacity from",
    )
    load.add_argument(
        "--calibrate-s",
        type=float,
        default=10,
        help="seconds of each path's calibration burst when there is no capacity",
    )
    load.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds before the first RSS sample (default min(60, duration/4))",
    )
    load.add_argument("--sample-every", type=float, default=30, help="progress and RSS period (s)")
    load.add_argument(
        "--drain-timeout",
        type=float,
        default=300,
        help="seconds the pool gets to persist everything after the load",
    )
    load.add_argument(
        "--rss-limit",
        type=float,
        default=10.0,
        help="RSS growth (percent) of a process class that counts as a finding",
    )
    probes = load.add_mutually_exclusive_group()
    probes.add_argument(
        "--probes",
        dest="probes",
        action="store_true",
        default=None,
        help="send the probes (default with our own instance)",
    )
    probes.add_argument(
        "--no-probes",
        dest="probes",
        action="store_false",
        help="send no probes (their panels are then allowed to stay empty)",
    )

    target = parser.add_argument_group("target (default: our own serve run)")
    target.add_argument(
        "--host", default=None, help="soak an app already running at this URL instead of our own"
    )
    target.add_argument("--grpc-target", default=None, help="host:port of its gRPC API")
    target.add_argument(
        "--ray-sd-file",
        type=Path,
        default=None,
        help="Ray's prom_metrics_service_discovery.json (default: found from the "
        "process serving the HTTP port)",
    )
    target.add_argument("--http-port", type=int, default=20030)
    target.add_argument("--grpc-port", type=int, default=20031)
    target.add_argument(
        "--port-block",
        type=int,
        default=int(os.environ.get("VOTES_BENCH_PORT_BLOCK", "39400")),
        help="first of the 42 ports the instance's direct ingress and HAProxy use",
    )
    target.add_argument(
        "--fallback-ports",
        type=int,
        nargs=2,
        default=(20034, 20035),
        metavar=("HTTP", "GRPC"),
        help="ports of Serve's own proxy behind HAProxy (Serve's default 8500 and "
        "9500 are shared by every instance on the machine)",
    )
    target.add_argument("--redis-db", type=int, default=9, help="Redis database of our instance")
    target.add_argument(
        "--app-config",
        type=Path,
        default=ROOT / "config.yaml",
        help="with --host: the config whose application args name the topic, "
        "group, Redis and MongoDB of the app (default config.yaml)",
    )

    prom = parser.add_argument_group("prometheus")
    prom.add_argument("--prometheus-listen", default=DEFAULT_LISTEN)
    prom.add_argument("--scrape-interval", type=int, default=DEFAULT_SCRAPE_INTERVAL_S)
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="leave our instance's Kafka topics and MongoDB database for a look",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ARTIFACTS,
        help="folder of soak-report.{md,json} and soak/ (locust, logs)",
    )
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error("--duration must be positive")
    if not 0 < args.share <= 1:
        parser.error("--share must be in (0, 1]")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be positive")
    if args.warmup is None:
        args.warmup = min(60.0, args.duration / 4)
    if args.probes is None:
        args.probes = args.host is None
    return args


# ---- the system under test ---------------------------------------------------------------------


@dataclass
class Target:
    """Where the votes go and where they end up."""

    http_url: str
    grpc_target: str
    topic: str
    dlq_topic: str
    group: str
    redis_url: str
    mongo_url: str
    mongo_database: str
    own: bool
    serve_session: int | None = None  # Unix session of our `serve run` (own instance)
    ray_session_dir: Path | None = None


def app_args(config_path: Path) -> dict[str, Any]:
    config = yaml.safe_load(config_path.read_text())
    return dict(config["applications"][0].get("args") or {})


class OwnInstance:
    """Our own `serve run` with what `make run` ships, and its topics; removed at the end."""

    def __init__(self, args: argparse.Namespace) -> None:
        from bench.harness import serve_instance
        from devkit.names import RunNames
        from serve_app.serve_env import SERVE_ENV

        self.names = RunNames("soak")
        base = app_args(ROOT / "config.yaml")
        self.redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
        self.app = {
            "kafka_topic": self.names.topic,
            "kafka_dlq_topic": self.names.dlq_topic,
            "kafka_consumer_group": self.names.group,
            "redis_url": self.redis_url,
            "mongo_database": self.names.mongo_database,
        }
        self.mongo_url = str(base.get("mongo_url", "mongodb://127.0.0.1:27017/"))
        # mode haproxy + SERVE_ENV = exactly serve_app.serve_env's environment (`make run`), plus
        # fallback proxy ports of our own: with Serve's fixed 8500/9500, other instances' HAProxy
        # sent their votes to our proxy (docs/decisions/0017-soak-and-panel-check.md).
        fallback = {
            "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(args.fallback_ports[0]),
            "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(args.fallback_ports[1]),
        }
        self.serve = serve_instance.ServeInstance(
            args=self.app,
            mode="haproxy",
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            port_block=args.port_block,
            extra_env=dict(SERVE_ENV) | fallback,
        )
        self.topics = [self.names.topic, self.names.dlq_topic]

    def start(self) -> Target:
        import redis

        from devkit.kafka import create_topics
        from serve_app.stores.redis_counts import ALL_KEYS

        create_topics(self.topics)
        # Database 9 is the soak's: its counters start from zero, so the Contest panels show
        # this soak only.
        client = redis.Redis.from_url(self.redis_url)
        client.delete(*ALL_KEYS)
        client.close()
        self.serve.start()
        assert self.serve.proc is not None
        return Target(
            http_url=self.serve.http_url,
            grpc_target=self.serve.grpc_target,
            topic=self.names.topic,
            dlq_topic=self.names.dlq_topic,
            group=self.names.group,
            redis_url=self.redis_url,
            mongo_url=self.mongo_url,
            mongo_database=self.names.mongo_database,
            own=True,
            serve_session=self.serve.proc.pid,
        )

    def stop(self, keep_data: bool = False) -> None:
        from bench.harness.stores import drop_mongo_database
        from devkit.kafka import delete_topics

        self.serve.stop()
        if keep_data:
            log(
                f"kept: topics {self.topics}, MongoDB database {self.names.mongo_database}, "
                f"Redis database of {self.redis_url}"
            )
            return
        delete_topics(self.topics)
        drop_mongo_database(self.names.mongo_database)


def host_target(args: argparse.Namespace) -> Target:
    from urllib.parse import urlparse

    config = app_args(args.app_config)
    url = args.host.rstrip("/")
    grpc_target = args.grpc_target or f"{urlparse(url).hostname}:9000"
    return Target(
        http_url=url,
        grpc_target=grpc_target,
        topic=config["kafka_topic"],
        dlq_topic=config["kafka_dlq_topic"],
        group=config["kafka_consumer_group"],
        redis_url=config["redis_url"],
        mongo_url=config["mongo_url"],
        mongo_database=config["mongo_database"],
        own=False,
    )


def find_sd_file(args: argparse.Namespace, target: Target) -> Path:
    """Ray's service-discovery file of the target's Ray (see loadtest/prometheus.py)."""
    if args.ray_sd_file is not None:
        return args.ray_sd_file
    session_dir = None
    if target.serve_session is not None:
        deadline = time.monotonic() + 30
        while session_dir is None and time.monotonic() < deadline:
            session_dir = session_dir_of_session(target.serve_session)
            if session_dir is None:
                time.sleep(1)
    else:
        from urllib.parse import urlparse

        session_dir = session_dir_of_listener(urlparse(target.http_url).port or 80)
    if session_dir is None:
        raise PrometheusError(
            "could not find the Ray session of the target (no process names "
            "--session-dir); pass --ray-sd-file"
        )
    target.ray_session_dir = session_dir
    return service_discovery_file(session_dir)


# ---- the stores ------------------------------------------------------------------------------


@dataclass
class Counts:
    kafka_records: int
    dlq_records: int
    redis_total: int
    mongo_documents: int
    results_total: int | None


class Stores:
    def __init__(self, target: Target) -> None:
        import httpx
        import redis
        from pymongo import MongoClient

        self.target = target
        self.redis = redis.Redis.from_url(target.redis_url)
        self.mongo: Any = MongoClient(target.mongo_url, serverSelectionTimeoutMS=10_000)
        self.http = httpx.Client(base_url=target.http_url, timeout=10)

    def redis_total(self) -> int:
        from serve_app.stores.redis_counts import TOTAL

        return int(self.redis.get(TOTAL) or 0)

    def dlq_records(self) -> int:
        from devkit.kafka import topic_records

        return topic_records(self.target.dlq_topic)

    def counts(self) -> Counts:
        from devkit.kafka import topic_records
        from serve_app.stores.mongo_log import COLLECTION

        results = None
        with contextlib.suppress(Exception):
            response = self.http.get("/results")
            if response.status_code == 200:
                results = int(response.json()["total"])
        return Counts(
            kafka_records=topic_records(self.target.topic),
            dlq_records=self.dlq_records(),
            redis_total=self.redis_total(),
            mongo_documents=int(
                self.mongo[self.target.mongo_database][COLLECTION].count_documents({})
            ),
            results_total=results,
        )

    def diagnose(self, window: tuple[float, float]) -> dict[str, Any]:
        """Where the vote log's documents came from: by source, and how many were received
        outside the load's window (someone else voting, or votes from before)."""
        from datetime import UTC, datetime

        from serve_app.stores.mongo_log import COLLECTION

        votes = self.mongo[self.target.mongo_database][COLLECTION]
        start, end = (datetime.fromtimestamp(t, UTC) for t in window)
        return {
            "by_source": {
                str(source): votes.count_documents({"source": source})
                for source in votes.distinct("source")
            },
            "received_before_load": votes.count_documents({"received_at": {"$lt": start}}),
            "received_after_load": votes.count_documents({"received_at": {"$gt": end}}),
        }

    def close(self) -> None:
        self.redis.close()
        self.mongo.close()
        self.http.close()


@dataclass
class Reconciliation:
    accepted: int
    kafka: int
    redis: int
    mongo: int
    results: int | None
    dlq: int
    poison_sent: int

    @property
    def exact(self) -> bool:
        return (
            self.kafka == self.redis == self.mongo == self.accepted
            and self.results in (None, self.accepted)
            and self.dlq == self.poison_sent
        )

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__ | {"exact": self.exact}


def reconcile(accepted: int, before: Counts, after: Counts, poison_sent: int) -> Reconciliation:
    """Increases of each store over the soak; the probes' poison records are in Kafka (and the
    DLQ) but, undecodable, never in Redis or MongoDB."""
    results = (
        None
        if before.results_total is None or after.results_total is None
        else after.results_total - before.results_total
    )
    return Reconciliation(
        accepted=accepted,
        kafka=after.kafka_records - before.kafka_records - poison_sent,
        redis=after.redis_total - before.redis_total,
        mongo=after.mongo_documents - before.mongo_documents,
        results=results,
        dlq=after.dlq_records - before.dlq_records,
        poison_sent=poison_sent,
    )


def wait_drained(
    stores: Stores,
    before: Counts,
    accepted: int,
    poison: int,
    timeout_s: float,
    stall_s: float = 60,
) -> tuple[Counts, float]:
    """Poll until Redis and the DLQ reached what the load and probes put in (bounded); then
    count everything once. The pool stores a batch in MongoDB before it counts it in Redis, so
    Redis is the drain signal; MongoDB's count over the whole log takes many seconds on FerretDB
    and would be measured as drain time. The exact reconciliation afterwards checks MongoDB."""
    started = time.monotonic()
    last, last_change = None, started
    while time.monotonic() - started < timeout_s:
        state = stores.redis_total(), stores.dlq_records()
        if state[0] - before.redis_total >= accepted and state[1] - before.dlq_records >= poison:
            break
        if state != last:
            last, last_change = state, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            log(f"no progress for {stall_s:.0f}s while draining: giving up")
            break
        time.sleep(0.5)
    drained_s = time.monotonic() - started
    return stores.counts(), drained_s


# ---- probes: known-bad input, so the rejection and dead-letter panels show real data ----------


@dataclass
class Probes:
    http_invalid: int = 0
    http_answers: list[int] = field(default_factory=list)
    grpc_invalid: int = 0
    grpc_answers: list[str] = field(default_factory=list)
    poison_sent: int = 0

    @property
    def as_expected(self) -> bool:
        return (
            all(status == 422 for status in self.http_answers)
            and all(code == "INVALID_ARGUMENT" for code in self.grpc_answers)
            and len(self.http_answers) == self.http_invalid
            and len(self.grpc_answers) == self.grpc_invalid
        )


def send_probes(target: Target) -> Probes:
    import grpc
    import httpx
    from confluent_kafka import Producer

    from devkit.kafka import KAFKA
    from serve_app.grpc_stubs import votes_pb2 as pb
    from serve_app.grpc_stubs import votes_pb2_grpc as pb_grpc

    probes = Probes()
    with httpx.Client(base_url=target.http_url, timeout=10) as client:
        for n in range(PROBE_INVALID_PER_PATH):
            probes.http_invalid += 1
            # rank 0 is out of range: a well-formed vote the API refuses (422, reason invalid).
            body = {"name": "soak probe", "album": f"invalid {n}", "year": 2000, "rank": 0}
            probes.http_answers.append(client.post("/votes", json=body).status_code)
    with grpc.insecure_channel(target.grpc_target) as channel:
        stub = pb_grpc.VoteServiceStub(channel)
        for n in range(PROBE_INVALID_PER_PATH):
            probes.grpc_invalid += 1
            try:
                stub.Cast(
                    pb.Vote(name="soak probe", album=f"invalid {n}", year=2000, rank=0), timeout=10
                )
                probes.grpc_answers.append("OK")
            except grpc.RpcError as exc:
                probes.grpc_answers.append(exc.code().name)
    producer = Producer({"bootstrap.servers": KAFKA, "enable.idempotence": True})
    for n in range(PROBE_POISON_RECORDS):
        producer.produce(
            target.topic,
            value=f"soak probe {n}: not a vote".encode(),
            key=f"soak-probe-{n}".encode(),
        )
    if producer.flush(15) == 0:
        probes.poison_sent = PROBE_POISON_RECORDS
    return probes


# ---- locust ------------------------------------------------------------------------------------


@dataclass
class LoadPlan:
    rate: float
    http_rate: float
    grpc_rate: float
    http_users: int
    http_user_rate: float
    grpc_users: int
    grpc_user_rate: float
    capacity: cap.Capacity | None
    share: float

    def as_dict(self) -> dict[str, Any]:
        plan = self.__dict__.copy()
        plan["capacity"] = None if self.capacity is None else self.capacity.__dict__
        return plan


def plan_load(
    rate: float,
    grpc_share: float,
    max_user_rate: float,
    capacity: cap.Capacity | None,
    share: float,
) -> LoadPlan:
    http_rate, grpc_rate = cap.split_rate(rate, grpc_share)
    http_users, http_user_rate = cap.users_for(http_rate, max_user_rate)
    grpc_users, grpc_user_rate = cap.users_for(grpc_rate, max_user_rate)
    return LoadPlan(
        rate=rate,
        http_rate=http_rate,
        grpc_rate=grpc_rate,
        http_users=http_users,
        http_user_rate=http_user_rate,
        grpc_users=grpc_users,
        grpc_user_rate=grpc_user_rate,
        capacity=capacity,
        share=share,
    )


def calibrate(target: Target, seconds: float) -> cap.Capacity:
    """Closed-loop single votes on each path (bench.harness.loadgen, 32 in flight); the best
    rate."""
    from urllib.parse import urlparse

    from bench.harness.loadgen import run_grpc, run_http
    from bench.harness.payloads import Bodies, GrpcMessages

    url = urlparse(target.http_url)
    log(f"calibrating: {seconds:.0f}s of single votes on each path (32 in flight)")
    http = run_http(
        url.hostname,
        url.port or 80,
        "/votes",
        Bodies("single", "soak-cal-http"),
        concurrency=32,
        warmup_s=2,
        duration_s=seconds,
    ).summary()
    grpc = run_grpc(
        target.grpc_target,
        GrpcMessages("single", "soak-cal-grpc"),
        concurrency=32,
        warmup_s=2,
        duration_s=seconds,
    ).summary()
    log(
        f"calibration: HTTP {http['votes_per_s']} votes/s ({http['errors']} errors), "
        f"gRPC {grpc['votes_per_s']} votes/s ({grpc['errors']} errors)"
    )
    best = max(http["votes_per_s"], grpc["votes_per_s"])
    if best <= 0:
        raise RuntimeError("calibration accepted no votes: is the app healthy?")
    return cap.Capacity(
        best,
        f"calibration: HTTP {http['votes_per_s']}, gRPC "
        f"{grpc['votes_per_s']} votes/s over {seconds:.0f}s",
    )


def locust_command(
    target: Target, plan: LoadPlan, duration_s: float, out: Path, tally_file: Path
) -> list[str]:
    users = plan.http_users + plan.grpc_users
    return [
        str(Path(sys.executable).parent / "locust"),
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        target.http_url,
        "--grpc-target",
        target.grpc_target,
        "--tags",
        "single",
        "-u",
        str(users),
        "-r",
        str(max(1.0, users / 10)),
        "-t",
        f"{math.ceil(duration_s)}s",
        "--stop-timeout",
        "30",
        "--tally-file",
        str(tally_file),
        "--only-summary",
        "--csv",
        str(out / "locust"),
        "--html",
        str(out / "locust.html"),
        "--exit-code-on-error",
        "0",  # errors are judged from the stats and the tally
    ]


def locust_env(plan: LoadPlan) -> dict[str, str]:
    return os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "VOTES_SOAK_HTTP_USERS": str(plan.http_users),
        "VOTES_SOAK_HTTP_USER_RATE": f"{plan.http_user_rate or 1:.6f}",
        "VOTES_SOAK_GRPC_USERS": str(plan.grpc_users),
        "VOTES_SOAK_GRPC_USER_RATE": f"{plan.grpc_user_rate or 1:.6f}",
    }


def locust_totals(out: Path) -> tuple[int, int]:
    """(requests, failures) of locust's Aggregated row so far (its CSV is rewritten every s)."""
    with (
        contextlib.suppress(OSError, ValueError, KeyError),
        (out / "locust_stats.csv").open() as file,
    ):
        for row in csv.DictReader(file):
            if row["Name"] == "Aggregated":
                return int(row["Request Count"]), int(row["Failure Count"])
    return 0, 0


def sample_times(duration_s: float, warmup_s: float, every_s: float) -> list[float]:
    """When to print progress and sample RSS (s after the load started): every every_s, plus
    the warm-up mark (the first RSS sample) and just before the load ends (the last)."""
    end = max(warmup_s, duration_s - 3)
    times = {round(k * every_s, 3) for k in range(1, int(end // every_s) + 1)}
    return sorted(t for t in times | {warmup_s, end} if 0 < t <= end)


# ---- the run ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    plan: LoadPlan | None = None
    tally: dict[str, int] = field(default_factory=dict)
    locust: dict[str, Any] = field(default_factory=dict)
    locust_exit: int | None = None
    probes: Probes | None = None
    reconciliation: Reconciliation | None = None
    drain_s: float = 0.0
    rss_rows: list[rss.GrowthRow] = field(default_factory=list)
    rss_processes: list[dict[str, Any]] = field(default_factory=list)
    progress: list[dict[str, Any]] = field(default_factory=list)
    queries: list[panels.PanelQuery] = field(default_factory=list)
    panel_verdict: panels.Verdict | None = None
    prometheus: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    load_window: tuple[float, float] = (0.0, 0.0)
    diagnosis: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        failures = sum(int(s.get("failures", 0)) for s in self.locust.values())
        return (
            failures
            + self.tally.get("rejected", 0)
            + self.tally.get("in_doubt", 0)
            + self.tally.get("retries", 0)
        )


def run_load(
    args: argparse.Namespace,
    target: Target,
    plan: LoadPlan,
    sampler: rss.RssSampler,
    outcome: Outcome,
) -> None:
    from devkit.kafka import LagReader
    from loadtest.run import read_locust_stats

    out = args.out / "soak"
    out.mkdir(parents=True, exist_ok=True)
    tally_file = out / "tally.json"
    tally_file.unlink(missing_ok=True)
    (out / "locust_stats.csv").unlink(missing_ok=True)
    command = locust_command(target, plan, args.duration, out, tally_file)
    lag_reader = LagReader(target.topic, target.group)
    log(
        f"locust: {plan.http_users} HTTP users x {plan.http_user_rate:.2f}/s + {plan.grpc_users} "
        f"gRPC users x {plan.grpc_user_rate:.2f}/s = {plan.rate:.1f} votes/s for "
        f"{args.duration:.0f}s (log {out / 'locust.log'})"
    )
    samples: list[rss.Sample] = []
    with open(out / "locust.log", "wb") as locust_log:
        started = time.time()
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=locust_env(plan),
            stdout=locust_log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        sampler.named[proc.pid] = "locust"
        try:
            probe_at = min(5.0, args.duration / 4)
            for at in [probe_at, *sample_times(args.duration, args.warmup, args.sample_every)]:
                while time.time() - started < at and proc.poll() is None:
                    time.sleep(0.2)
                if proc.poll() is not None:
                    break
                if at == probe_at and args.probes:
                    outcome.probes = send_probes(target)
                    log(
                        f"probes: HTTP {outcome.probes.http_answers}, gRPC "
                        f"{outcome.probes.grpc_answers}, {outcome.probes.poison_sent} undecodable "
                        "records into the topic"
                    )
                    continue
                sample = sampler.sample()
                if at >= args.warmup:
                    samples.append(sample)
                sent, failures = locust_totals(out)
                lag = lag_reader.lag()
                line = {
                    "elapsed_s": round(time.time() - started),
                    "sent": sent,
                    "errors": failures,
                    "lag": lag,
                    "rss_mb": round(sample.total() / rss.MB, 1),
                }
                outcome.progress.append(
                    line
                    | {
                        "rss_by_class_mb": {
                            k: round(v / rss.MB, 1) for k, v in sorted(sample.by_class().items())
                        }
                    }
                )
                log(
                    f"{line['elapsed_s']:>4}s  sent {sent:>7}  errors {failures}  "
                    f"lag {'?' if lag is None else lag}  RSS {line['rss_mb']:.0f} MB"
                )
            proc.wait(timeout=args.duration + 120)
        except BaseException:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            raise
        finally:
            lag_reader.close()
        outcome.load_window = (started, time.time())
    outcome.locust_exit = proc.returncode
    outcome.locust = read_locust_stats(out)
    if not tally_file.exists():
        raise RuntimeError(
            f"locust ended (exit {proc.returncode}) without its tally; see {out / 'locust.log'}"
        )
    outcome.tally = json.loads(tally_file.read_text())
    if len(samples) >= 2:
        outcome.rss_rows = rss.growth(samples[0], samples[-1], args.rss_limit, RSS_EXPLAINED)
        outcome.rss_processes = rss.per_process(samples[0], samples[-1])
    else:
        outcome.problems.append("fewer than two RSS samples after the warm-up: no growth figure")


def check_panels(
    prom: PrivatePrometheus,
    target: Target,
    outcome: Outcome,
    scrape_interval_s: int,
    probes_ran: bool,
) -> None:
    import redis

    queries = panels.dashboard_queries(
        panels.load_dashboard(panels.PIPELINE)
    ) + panels.dashboard_queries(panels.load_dashboard(panels.CONTEST))
    start, _ = outcome.load_window
    end = time.time()
    panels.check_prometheus(
        queries,
        prom.query_range,
        start - 10,
        end,
        step_s=scrape_interval_s,
        scrape_interval_s=scrape_interval_s,
    )
    client = redis.Redis.from_url(target.redis_url)
    try:
        panels.check_redis(queries, client)
    finally:
        client.close()
    outcome.queries = queries
    outcome.panel_verdict = panels.apply_allow_list(queries, probes_ran)
    outcome.prometheus["accepted_total_by_path"] = {
        item["metric"].get("path", "?"): float(item["value"][1])
        for item in prom.query("sum by (path) (ray_votes_accepted_total)")
    }


def soak(args: argparse.Namespace) -> Outcome:
    from bench.harness.cpu import stack_pids
    from loadtest.run import Results

    outcome = Outcome()
    own = OwnInstance(args) if args.host is None else None
    prom: PrivatePrometheus | None = None
    stores: Stores | None = None
    try:
        if own is not None:
            log(
                f"starting our own serve run (HTTP :{args.http_port}, gRPC :{args.grpc_port}, "
                f"Redis db {args.redis_db}, ports {args.port_block}+)"
            )
            target = own.start()
        else:
            target = host_target(args)
        sd_file = find_sd_file(args, target)
        log(f"Ray's service discovery file: {sd_file}")
        wait_for_file(sd_file, 60)
        prom = PrivatePrometheus(
            sd_file,
            (args.out / "soak" / "prometheus").resolve(),
            listen=args.prometheus_listen,
            scrape_interval_s=args.scrape_interval,
        )
        prom.start()
        targets = prom.wait_for_targets(90)
        outcome.prometheus = {
            "url": prom.url,
            "pid": prom.pid,
            "sd_file": str(sd_file),
            "scrape_interval_s": args.scrape_interval,
            "targets": [t.get("scrapeUrl") for t in targets],
        }
        log(f"prometheus (pid {prom.pid}) on {prom.url} scrapes {len(targets)} Ray targets")

        capacity = None
        if args.rate is None:
            capacity = cap.capacity_from_file(args.bench_results)
            if capacity is None:
                log(f"no single-vote capacity in {args.bench_results}: calibrating")
                capacity = calibrate(target, args.calibrate_s)
            log(f"capacity: {capacity.source}")
        rate = args.rate if args.rate is not None else capacity.rate(args.share)  # type: ignore[union-attr]
        outcome.plan = plan_load(rate, args.grpc_share, args.max_user_rate, capacity, args.share)

        stores = Stores(target)
        _settled, stable = Results(target.http_url).stable_total(120)
        if not stable:
            outcome.problems.append(
                "GET /results was still moving before the load (a backlog, "
                "or someone else voting): the reconciliation may fail"
            )
        before = stores.counts()
        log(f"before: {before}")
        sampler = rss.RssSampler(
            stack=stack_pids(),
            sessions=[target.serve_session] if target.serve_session else [],
            extra={prom.pid: "prometheus"} if prom.pid else {},
            ray_session_dir=None if target.serve_session else target.ray_session_dir,
        )
        run_load(args, target, outcome.plan, sampler, outcome)
        poison = outcome.probes.poison_sent if outcome.probes else 0
        accepted = int(outcome.tally.get("accepted", 0))
        log(f"load done: {accepted} votes accepted; waiting for the pool to drain")
        after, outcome.drain_s = wait_drained(stores, before, accepted, poison, args.drain_timeout)
        # Let the last counters reach Ray's agent (~10 s) and one scrape more.
        time.sleep(12 + args.scrape_interval)
        after = stores.counts()
        outcome.reconciliation = reconcile(accepted, before, after, poison)
        log(f"after: {after}")
        if not outcome.reconciliation.exact:
            with contextlib.suppress(Exception):
                outcome.diagnosis = stores.diagnose(outcome.load_window)
                log(f"not exact; the vote log: {outcome.diagnosis}")
        check_panels(prom, target, outcome, args.scrape_interval, bool(outcome.probes))
    finally:
        if stores is not None:
            stores.close()
        if prom is not None:
            log(f"stopping prometheus (pid {prom.pid})")
            prom.stop()
        if own is not None:
            own.stop(keep_data=args.keep_data)
    return outcome


# ---- the report ------------------------------------------------------------------------------


def verdict(outcome: Outcome) -> list[str]:
    """Why the soak failed, one line each; [] when it passed."""
    failed = list(outcome.problems)
    if outcome.errors:
        failed.append(f"{outcome.errors} errors (locust failures, rejected, in doubt, retries)")
    if outcome.reconciliation is None or not outcome.reconciliation.exact:
        failed.append("the reconciliation is not exact")
    if outcome.probes is not None and not outcome.probes.as_expected:
        failed.append("the probes were not answered as expected (422 / INVALID_ARGUMENT)")
    if outcome.panel_verdict is None or not outcome.panel_verdict.passed:
        failed += (
            outcome.panel_verdict.failures if outcome.panel_verdict else ["panels not checked"]
        )
    failed += [
        f"RSS of {row.process_class} grew {row.growth_pct}%"
        for row in outcome.rss_rows
        if row.flagged
    ]
    return failed


def report_json(args: argparse.Namespace, outcome: Outcome, failures: list[str]) -> dict[str, Any]:
    return {
        "passed": not failures,
        "failures": failures,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "host": args.host,
        "plan": outcome.plan.as_dict() if outcome.plan else None,
        "tally": outcome.tally,
        "locust": outcome.locust,
        "locust_exit": outcome.locust_exit,
        "errors": outcome.errors,
        "probes": outcome.probes.__dict__ if outcome.probes else None,
        "reconciliation": outcome.reconciliation.as_dict() if outcome.reconciliation else None,
        "drain_s": round(outcome.drain_s, 1),
        "diagnosis": outcome.diagnosis,
        "rss": {
            "limit_pct": args.rss_limit,
            "classes": [r.as_dict() for r in outcome.rss_rows],
            "processes": outcome.rss_processes,
        },
        "progress": outcome.progress,
        "prometheus": outcome.prometheus,
        "panels": [q.as_dict() for q in outcome.queries],
        "panels_allowed_empty": outcome.panel_verdict.allowed if outcome.panel_verdict else [],
        "machine_loadavg": os.getloadavg(),
    }


def report_markdown(args: argparse.Namespace, outcome: Outcome, failures: list[str]) -> str:
    plan, rec = outcome.plan, outcome.reconciliation
    lines = [
        f"# Soak report ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"**{'PASSED' if not failures else 'FAILED'}**"
        + ("" if not failures else ": " + "; ".join(failures)),
        "",
    ]
    if plan is not None:
        source = plan.capacity.source if plan.capacity else "--rate"
        lines += [
            f"Load: {plan.rate:.1f} votes/s for {args.duration:.0f} s (HTTP "
            f"{plan.http_rate:.1f}/s by {plan.http_users} users, gRPC {plan.grpc_rate:.1f}/s "
            f"by {plan.grpc_users} users), single votes; rate from {source}"
            + (f" x {plan.share:g}" if plan.capacity else "")
            + ".",
            "",
        ]
    lines += ["## Reconciliation", ""]
    if rec is not None:
        lines += [
            (
                "| votes accepted (locust) | Kafka records | Redis votes:total | MongoDB "
                "documents | GET /results | DLQ records / poison sent | exact |"
            ),
            "| ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            (
                f"| {rec.accepted} | {rec.kafka} | {rec.redis} | {rec.mongo} | {rec.results} | "
                f"{rec.dlq} / {rec.poison_sent} | {'yes' if rec.exact else 'NO'} |"
            ),
            "",
            (
                f"Errors: {outcome.errors} (tally {outcome.tally}); drained in "
                f"{outcome.drain_s:.1f} s."
            ),
            "",
        ]
    if outcome.probes is not None:
        p = outcome.probes
        lines += [
            (
                f"Probes: HTTP invalid votes answered {p.http_answers}, gRPC {p.grpc_answers}, "
                f"{p.poison_sent} undecodable records written to the topic."
            ),
            "",
        ]
    lines += [
        f"## RSS per process class (after {args.warmup:.0f} s of warm-up, and at the end)",
        "",
        rss.markdown_table(outcome.rss_rows, args.rss_limit),
        "",
        "<details><summary>RSS per process</summary>",
        "",
        rss.process_table(outcome.rss_processes),
        "",
        "</details>",
        "",
        "## Dashboard panels",
        "",
        (
            f"Prometheus {outcome.prometheus.get('url')} scraping "
            f"{outcome.prometheus.get('targets')} (from {outcome.prometheus.get('sd_file')}) "
            f"every {outcome.prometheus.get('scrape_interval_s')} s; PromQL run as a range "
            "query over the load's window; Redis commands against the app's database."
        ),
        "",
        panels.markdown_table(outcome.queries),
        "",
    ]
    if outcome.prometheus.get("accepted_total_by_path"):
        lines += [
            (
                f"Prometheus sum by (path) (ray_votes_accepted_total) at the end: "
                f"{outcome.prometheus['accepted_total_by_path']}"
            ),
            "",
        ]
    lines += [
        "## Progress",
        "",
        "| elapsed (s) | sent | errors | lag | RSS (MB) |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {p['elapsed_s']} | {p['sent']} | {p['errors']} | {p['lag']} | {p['rss_mb']} |"
        for p in outcome.progress
    ]
    return "\n".join(lines) + "\n"


def print_summary(outcome: Outcome, failures: list[str], rss_limit: float) -> None:
    print()
    print(panels.markdown_table(outcome.queries))
    print()
    print(rss.markdown_table(outcome.rss_rows, rss_limit))
    if outcome.reconciliation is not None:
        print()
        print(f"reconciliation: {outcome.reconciliation.as_dict()}")
    print()
    print("SOAK PASSED" if not failures else "SOAK FAILED:\n  " + "\n  ".join(failures))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from devkit.waiting import WaitFailed

    try:
        outcome = soak(args)
    except (PrometheusError, RuntimeError, WaitFailed) as exc:
        log(f"soak aborted: {exc}")
        return 2
    failures = verdict(outcome)
    md, js = args.out / REPORT_MD.name, args.out / REPORT_JSON.name
    js.write_text(json.dumps(report_json(args, outcome, failures), indent=2, default=str) + "\n")
    md.write_text(report_markdown(args, outcome, failures))
    print_summary(outcome, failures, args.rss_limit)
    log(f"report: {md} and {js}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
