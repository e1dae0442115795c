"""`make bench`: every ingestion path and sink of votes, side by side, on this machine, in one run.

    .venv/bin/python -m bench.run                      # everything (~30 min on 2 cores: it prints its estimate)
    .venv/bin/python -m bench.run --quick              # a tiny smoke of every group (~8 min)
    .venv/bin/python -m bench.run --only raw,peer      # groups or scenario names
    .venv/bin/python -m bench.run --only ingest,noop --serve-modes default,haproxy

Scenarios (group in brackets). Serve scenarios carry their mode, e.g. `serve_noop_http[haproxy]`
(haproxy: what `make run` ships, the default of --serve-modes):
  kafka_producer_raw [raw]   confluent-kafka producing vote records from one process, acks=all
  ferretdb_raw       [raw]   insert_many of vote documents, 1000 per call
  redis_raw          [raw]   the pool's counter Lua script, 1000 votes per call
  plain_http_peer, plain_http_peer_batch [peer]  uvicorn + Starlette: validate with Vote, produce with
                             acks (no Ray); plain_grpc_peer, plain_grpc_peer_batch: the same with grpc.aio
  seed_rust_http, seed_rust_http_batch, seed_go_grpc, seed_go_grpc_batch, seed_go_http_grpc [seed]
                             the seed's Rust HTTP and Go gRPC servers (bench/seed_peers.py builds them;
                             skipped, with the reason in the report, on a machine without Rust or Go)
  serve_noop_http, serve_noop_grpc [noop]  bench.apps:build_noop: Serve with our routes and methods and
                             no work at all: the framework's own floor
  serve_{http,grpc}_{single,batch}_ingest [ingest]  VoteIngress as `make run` builds it, pool idle
                             (bench.apps:build_ingest_only): ingestion alone, like for like with the peers
  serve_{http,grpc}_{single,batch} [serve]  the whole app (`serve run config.yaml`), pool running;
                             each repeat waits until the pool has counted every vote
  system_single, system_batch [system]  the whole app for a sustained window at the most it sustains
                             (lag-bounded load, bench/system.py): votes/s accepted and persisted, the
                             lag when the load stops and the time the pool takes to drain it
  e2e_latency        [e2e]   acceptance -> visible in /results, at ~50% of the best single rate
  persist_x1, persist_xN [persist]  the consumer pool draining a preloaded topic, 1 and N replicas

Variants: a scenario measured again under another value of an app setting, in the same run, the
repeats of the two interleaved (A/B, B/A, ...); the report gives their ratio with its interval and
the targets judge the baseline (the first value, under the plain name) only. On by default:
  --persist-write-concerns majority,acknowledged   mongo_write_concern: persist_xN_acknowledged
  --batch-transactions on,off    kafka_batch_transactions: serve_http_batch_ingest_no_txn, on a
                             second ingest-only `serve run` beside the first (one more Serve start)
The variant runs --context-repeats times (3), against as many of the baseline's repeats; pass a
single value (e.g. --batch-transactions on, what --quick does) to measure the baseline alone.

The compared groups (peer, seed, noop, ingest) run --repeats times (5), so that the report can give
each comparison a bootstrap confidence interval (bench/stats.py); the others run --context-repeats
times (3). Each repeat: warm-up, then a measured window. Every repeat reconciles (votes accepted ==
records in Kafka == votes counted, as applicable; the no-op: every request answered 202) and counts
errors. Nothing touches a developer's data: own topics, consumer groups, MongoDB databases, Redis
keys or databases (--redis-db, --persist-redis-db), all removed at the end. Writes
bench/results/latest.{json,md,png} (or --out).
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
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
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
    readable_records,
    stack_pids,
    wait_for_count,
)
from bench.profile import Profiler
from bench.serve_instance import MODES, SERVE_PORT_BLOCK, ServeInstance
from bench.targets import evaluate_targets
from devkit.kafka import create_topics, delete_topics
from devkit.names import RunNames
from devkit.net import free_port, port_open
from devkit.waiting import wait_until
from serve_app.serve_env import PORT_BLOCK_SIZE, SERVE_ENV
from serve_app.settings import MONGO_WRITE_CONCERNS, Settings
from serve_app.stores import redis_counts as rc

try:  # the seed's peers (Rust, Go): built by bench/seed_peers.py where its toolchains exist
    from bench import seed_peers
except ImportError:  # pragma: no cover - a checkout without it: the seed group is skipped
    seed_peers = None  # type: ignore[assignment]

__all__ = ["evaluate_targets", "machine_info", "replica_counts", "summarize_runs"]

GROUPS = {
    "raw": ["kafka_producer_raw", "ferretdb_raw", "redis_raw"],
    "peer": [
        "plain_http_peer",
        "plain_grpc_peer",
        "plain_http_peer_batch",
        "plain_grpc_peer_batch",
    ],
    "seed": [
        "seed_rust_http",
        "seed_rust_http_batch",
        "seed_go_grpc",
        "seed_go_grpc_batch",
        "seed_go_http_grpc",
    ],
    "noop": ["serve_noop_http", "serve_noop_grpc"],
    "ingest": [
        "serve_http_single_ingest",
        "serve_http_batch_ingest",
        "serve_grpc_single_ingest",
        "serve_grpc_batch_ingest",
    ],
    "serve": ["serve_http_single", "serve_http_batch", "serve_grpc_single", "serve_grpc_batch"],
    "system": ["system_single", "system_batch"],
    "e2e": ["e2e_latency"],
    "persist": ["persist"],
}
ALL = [name for names in GROUPS.values() for name in names]
# Compared with confidence intervals in the report: --repeats. The others: --context-repeats.
COMPARED_GROUPS = ("peer", "seed", "noop", "ingest")
# Measured once per Serve mode, with the mode as a suffix of the name ("" for Serve's default).
MODE_GROUPS = ("noop", "ingest", "serve", "system")
# Whose scenario is which (protocol, kind) through Serve; the Python peers and the seed's peers.
SERVE_PATHS = {
    "http_single": ("http", "single"),
    "http_batch": ("http", "batch"),
    "grpc_single": ("grpc", "single"),
    "grpc_batch": ("grpc", "batch"),
}
# Seed scenarios: (protocol, kind, HTTP path, the seed_peers builds they need).
SEED_SCENARIOS: dict[str, tuple[str, str, str | None, tuple[str, ...]]] = {
    "seed_rust_http": ("http", "single", "/rust/insert", ("seed_rust_http",)),
    "seed_rust_http_batch": ("http", "batch", "/votes/batch", ("seed_rust_http",)),
    "seed_go_grpc": ("grpc", "single", None, ("seed_go_grpc",)),
    "seed_go_grpc_batch": ("grpc", "batch", None, ("seed_go_grpc",)),
    "seed_go_http_grpc": (
        "http",
        "single",
        "/grpc/insert",
        ("seed_go_grpc", "seed_go_http_client"),
    ),
}


@dataclass(frozen=True)
class Variants:
    """A scenario measured under several values of an app setting in one run: the first value is
    the baseline and keeps the scenario's name; each other value's repeats are interleaved with the
    baseline's (`interleaved`), and the report gives their ratio (bench/report.py variant_lines)."""

    flag: str  # the bench.run option that chooses the values
    setting: str  # the app setting (serve_app.settings.Settings)
    what: str  # what the report calls it
    values: dict[str, Any]  # a value as the option spells it -> the setting's value
    suffixes: dict[str, str] = field(
        default_factory=dict
    )  # a value -> its names' suffix (default: itself)
    default: str = ""  # the option's default

    def parse(self, text: str) -> list[str]:
        """The values to compare, the baseline first, each once (empty text: the default)."""
        chosen = list(
            dict.fromkeys(v.strip() for v in (text or self.default).split(",") if v.strip())
        )
        for value in chosen:
            if value not in self.values:
                raise SystemExit(
                    f"{self.flag}: unknown value {value!r}; known: {', '.join(self.values)}"
                )
        if not chosen:
            raise SystemExit(f"{self.flag} names no value")
        return chosen

    def name(self, base: str, value: str, baseline: str) -> str:
        """`base` for the baseline, `base_<suffix>` for another value."""
        return base if value == baseline else f"{base}_{self.suffixes.get(value, value)}"

    def info(self, value: str, chosen: list[str], baseline_name: str) -> dict[str, Any]:
        """What a scenario records about its variant: the report and the targets read it."""
        info = {
            "variant_setting": self.setting,
            "variant_flag": self.flag,
            "variant_what": self.what,
            "variant": value,
            "variant_baseline": chosen[0],
        }
        return info | ({"variant_of": baseline_name} if value != chosen[0] else {})


WRITE_CONCERNS = Variants(
    "--persist-write-concerns",
    "mongo_write_concern",
    "vote log write concern",
    {c: c for c in MONGO_WRITE_CONCERNS},
    default=f"{Settings.model_fields['mongo_write_concern'].default},acknowledged",
)
BATCH_TRANSACTIONS = Variants(
    "--batch-transactions",
    "kafka_batch_transactions",
    "Kafka transaction per batch",
    {"on": True, "off": False},
    suffixes={"on": "txn", "off": "no_txn"},
    default="on,off",
)
VARIANTS = (WRITE_CONCERNS, BATCH_TRANSACTIONS)
# The scenario --batch-transactions varies (ingest only: the transaction is the ingress's work).
BATCH_TRANSACTIONS_SCENARIO = "serve_http_batch_ingest"


def base_of(name: str) -> str:
    """A scenario's name without its mode suffix and its variant suffix."""
    base = name.split("[", 1)[0]
    for variants in VARIANTS:
        for value in variants.values:
            suffix = f"_{variants.suffixes.get(value, value)}"
            if base.endswith(suffix) and base[: -len(suffix)] in ALL:
                return base[: -len(suffix)]
    return base


def group_of(name: str) -> str:
    base = base_of(name)
    if base.startswith("persist"):
        return "persist"
    return next((group for group, names in GROUPS.items() if base in names), "")


def suffix_of(mode: str) -> str:
    return "" if mode == "default" else f"[{mode}]"


@dataclass
class Plan:
    warmup_s: float
    duration_s: float
    batch_duration_s: float
    repeats: int
    context_repeats: int
    concurrency: int
    batch_concurrency: int
    persist_records: int
    persist_replicas: list[int]
    persist_write_concerns: list[str]
    batch_transactions: list[str]
    variant_repeats: int
    drain_timeout_s: float
    e2e_duration_s: float
    system_warmup_s: float
    system_duration_s: float

    def repeats_of(self, name: str) -> int:
        return self.repeats if group_of(name) in COMPARED_GROUPS else self.context_repeats


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny durations, one repeat: a smoke test"
    )
    parser.add_argument("--only", default="", help="comma-separated groups or scenario names")
    parser.add_argument(
        "--skip", default="", help="comma-separated groups or scenario names to leave out"
    )
    parser.add_argument(
        "--repeats", type=int, help="repeats of the compared groups: peer, seed, noop, ingest (5)"
    )
    parser.add_argument(
        "--context-repeats",
        type=int,
        help="repeats of the other groups (default: the smaller of 3 and --repeats)",
    )
    parser.add_argument(
        "--warmup", type=float, help="seconds of warm-up before each measured window"
    )
    parser.add_argument("--duration", type=float, help="seconds of each measured window")
    parser.add_argument(
        "--batch-duration", type=float, help="measured window of the batch scenarios"
    )
    parser.add_argument(
        "--system-warmup",
        type=float,
        help="warm-up of system_* (where the lag-bounded load finds its rate)",
    )
    parser.add_argument("--system-duration", type=float, help="sustained window of system_*")
    parser.add_argument(
        "--system-load",
        choices=("lag-bounded", "closed"),
        default="lag-bounded",
        help="system_*: steer the rate from the pool's lag (default), or closed loop",
    )
    parser.add_argument(
        "--system-protocol",
        choices=("auto", "http", "grpc"),
        default="auto",
        help="system_*: the protocol (auto: the faster ingest-only one of this run)",
    )
    parser.add_argument("--concurrency", type=int, help="requests in flight, single-vote scenarios")
    parser.add_argument("--batch-concurrency", type=int, help="requests in flight, batch scenarios")
    parser.add_argument("--persist-records", type=int, help="records preloaded for persist")
    parser.add_argument(
        "--persist-replicas",
        default="",
        help="pool sizes to measure (default: 1 and config.yaml's VotePersister replicas)",
    )
    parser.add_argument(
        "--persist-write-concerns",
        default="",
        help="vote log write concerns (mongo_write_concern) to compare in persist, "
        f"comma-separated, the first as the baseline (choices: {', '.join(MONGO_WRITE_CONCERNS)}; "
        f"default: {WRITE_CONCERNS.default}; one value: the baseline alone)",
    )
    parser.add_argument(
        "--batch-transactions",
        default="",
        help="kafka_batch_transactions values to compare in serve_http_batch_ingest, "
        f"comma-separated, the first as the baseline (choices: on, off; default: "
        f"{BATCH_TRANSACTIONS.default}: serve_http_batch_ingest and "
        "serve_http_batch_ingest_no_txn, --quick: on; one value: the baseline alone)",
    )
    parser.add_argument(
        "--serve-modes",
        default="haproxy",
        help=f"Serve environment modes, comma-separated: {', '.join(MODES)} (default: "
        "haproxy, what `make run` ships; e2e_latency runs in the last one)",
    )
    parser.add_argument("--serve-config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument(
        "--ingress-max-ongoing",
        type=int,
        help="override VoteIngress max_ongoing_requests (experiments)",
    )
    parser.add_argument(
        "--ingress-replicas",
        type=int,
        help="fix VoteIngress at this many replicas instead of autoscaling (experiments)",
    )
    parser.add_argument(
        "--pool-replicas",
        type=int,
        help="fix the Serve app's VotePersister at this many replicas (experiments)",
    )
    parser.add_argument(
        "--app-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an application arg of the Serve app, e.g. kafka_linger_ms=5",
    )
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=9000)
    parser.add_argument(
        "--fallback-ports",
        type=int,
        nargs=2,
        metavar=("HTTP", "GRPC"),
        help="ports of Serve's own proxy behind HAProxy (default: --http-port + 4 and "
        "--grpc-port + 4). Serve's default 8500/9500 is machine-wide: another "
        "instance's HAProxy would send its votes there (docs/decisions/0017)",
    )
    parser.add_argument(
        "--redis-db", type=int, default=13, help="Redis database of the Serve app under test"
    )
    parser.add_argument(
        "--persist-redis-db",
        type=int,
        default=14,
        help="Redis database of the persist runs (and of redis_raw's prefixed keys)",
    )
    parser.add_argument(
        "--e2e-rate", type=float, help="votes/s for e2e_latency (default: 50%% of the best)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where latest.{json,md,png} go")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="py-spy profile of the ingress replica and Serve's proxy during the first repeat "
        "of each Serve scenario (default: on when py-spy is installed)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="update the existing latest.json: replace the scenarios measured now, keep the "
        "others (each scenario carries its measured_at and plan)",
    )
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace, config: dict[str, Any]) -> Plan:
    pool = next(
        (
            d
            for d in config["applications"][0].get("deployments", [])
            if d["name"] == "VotePersister"
        ),
        {},
    )
    pool_default = pool.get("num_replicas", 2)
    if "autoscaling_config" in pool or not isinstance(pool_default, int):
        # Autoscaled on lag: at full load it grows past 1; on 2 cores more than 2 consumer
        # processes only share the same CPUs. Measure 1 and 2 (pass --persist-replicas for more).
        pool_default = 2
    quick = args.quick
    replicas = [int(x) for x in args.persist_replicas.split(",") if x.strip()] or sorted(
        {1, pool_default}
    )
    repeats = args.repeats if args.repeats is not None else (1 if quick else 5)
    for flag, value in (("--repeats", repeats), ("--context-repeats", args.context_repeats)):
        if value is not None and value < 1:
            raise SystemExit(f"{flag} must be at least 1, got {value}")
    context_repeats = args.context_repeats if args.context_repeats is not None else min(3, repeats)
    return Plan(
        warmup_s=args.warmup if args.warmup is not None else (0.5 if quick else 3.0),
        duration_s=args.duration if args.duration is not None else (2.0 if quick else 8.0),
        batch_duration_s=(
            args.batch_duration if args.batch_duration is not None else (2.0 if quick else 5.0)
        ),
        repeats=repeats,
        context_repeats=context_repeats,
        concurrency=args.concurrency or (8 if quick else 32),
        batch_concurrency=args.batch_concurrency or (2 if quick else 4),
        persist_records=args.persist_records or (2000 if quick else 40_000),
        persist_replicas=replicas,
        persist_write_concerns=write_concerns(args.persist_write_concerns),
        # --quick: no second ingest `serve run` (a smoke; it would add ~2 min to ~9)
        batch_transactions=batch_transactions(
            args.batch_transactions or ("on" if quick else ""), args.app_arg
        ),
        variant_repeats=context_repeats,
        drain_timeout_s=60 if quick else 240,
        e2e_duration_s=4 if quick else 12,
        system_warmup_s=args.system_warmup
        if args.system_warmup is not None
        else (3.0 if quick else 8.0),
        system_duration_s=args.system_duration
        if args.system_duration is not None
        else (4.0 if quick else 20.0),
    )


def write_concerns(text: str) -> list[str]:
    """--persist-write-concerns: the write concerns to compare, the baseline first."""
    return WRITE_CONCERNS.parse(text)


def batch_transactions(text: str, app_args: list[str]) -> list[str]:
    """--batch-transactions: on and/or off, the baseline first. `--app-arg kafka_batch_transactions=X`
    (decision 0023's way) instead: X alone; both at once: refused."""
    given = [
        value.strip().lower()
        for key, _, value in (item.partition("=") for item in app_args)
        if key.strip() == BATCH_TRANSACTIONS.setting
    ]
    if given and text:
        raise SystemExit(
            f"--app-arg {BATCH_TRANSACTIONS.setting}=... and --batch-transactions both set "
            f"{BATCH_TRANSACTIONS.setting}: use --batch-transactions (e.g. off, or off,on)"
        )
    if given:
        return ["on" if given[-1] in ("true", "1", "yes", "on") else "off"]
    return BATCH_TRANSACTIONS.parse(text)


def persist_name(replicas: int, write_concern: str, baseline: str) -> str:
    """persist_x1 for the baseline write concern, persist_x1_acknowledged for another."""
    return WRITE_CONCERNS.name(f"persist_x{replicas}", write_concern, baseline)


def interleaved(choices: list[str], repeats: int, variant_repeats: int | None = None) -> list[str]:
    """The order of the repeats: A/B, then B/A, ... so that a drift of the machine meets both;
    with fewer variant repeats, the baseline's remaining repeats after them."""
    rounds = repeats if variant_repeats is None else min(repeats, variant_repeats)
    order = [
        choice
        for index in range(rounds)
        for choice in (choices if index % 2 == 0 else list(reversed(choices)))
    ]
    return order + choices[:1] * (repeats - rounds)


def selected(args: argparse.Namespace) -> list[str]:
    def expand(text: str) -> set[str]:
        names: set[str] = set()
        for item in filter(None, (t.strip() for t in text.split(","))):
            base = base_of(
                item
            )  # a name as the report shows it, mode and variant suffixes included
            if item in GROUPS:
                names.update(GROUPS[item])
            elif base in ALL:
                names.add(base)
            elif item.startswith("persist"):
                names.add("persist")
            else:
                raise SystemExit(
                    f"unknown scenario or group {item!r}; known: {', '.join([*GROUPS, *ALL])}"
                )
        return names

    chosen = expand(args.only) if args.only else set(ALL)
    chosen -= expand(args.skip)
    return [name for name in ALL if name in chosen]


def serve_modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes:
        raise SystemExit("--serve-modes names no mode")
    for mode in modes:
        if mode not in MODES:
            raise SystemExit(f"unknown serve mode {mode!r}; known: {', '.join(MODES)}")
    return modes


def serve_env(mode: str, fallback_ports: tuple[int, int]) -> dict[str, str]:
    """Environment on top of the mode's: in haproxy mode all of what `make run` sets
    (serve_app.serve_env.SERVE_ENV); in every mode fallback proxy ports of our own."""
    ports = {
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(fallback_ports[0]),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(fallback_ports[1]),
    }
    return (dict(SERVE_ENV) if mode == "haproxy" else {}) | ports


def own_ports(args: argparse.Namespace) -> tuple[int, int, int, int]:
    """HTTP, gRPC and the two fallback proxy ports, each distinct."""
    fallback = args.fallback_ports or [args.http_port + 4, args.grpc_port + 4]
    ports = (args.http_port, args.grpc_port, fallback[0], fallback[1])
    if len(set(ports)) < len(ports):
        raise SystemExit(
            f"--http-port, --grpc-port and --fallback-ports must be four ports, got {ports}"
        )
    return ports


# What a full run costs besides the measured windows (seconds, measured on 2 cores).
SERVE_START_STOP_S = 95.0  # `serve run` until ready (~55-70 s) and its shutdown (~10-50 s)
PEER_START_S = 4.0
REPEAT_OVERHEAD_S = 1.5  # Kafka watermarks, reconciliation, the CPU meter


def serve_instances(chosen: Collection[str]) -> list[str]:
    """The `serve run`s a mode needs: the no-op floor, ingest only, the whole app (closed loop),
    the whole app again (sustained and latency runs, from the pool's configured start)."""
    groups = {group_of(name) for name in chosen}
    return [
        app
        for app, needs in (
            ("noop", {"noop"}),
            ("ingest", {"ingest"}),
            ("whole", {"serve"}),
            ("system", {"system", "e2e"}),
        )
        if groups & needs
    ]


def estimate_s(plan: Plan, chosen: Collection[str], modes: Collection[str]) -> float:
    """The expected wall time of a run: each repeat's windows and overheads, plus the starts."""
    single = plan.warmup_s + plan.duration_s + REPEAT_OVERHEAD_S
    batch = plan.warmup_s + plan.batch_duration_s + REPEAT_OVERHEAD_S
    sink = min(plan.warmup_s, 1.0) + max(2.0, plan.duration_s / 2) + 4.0  # + setup, count, drop
    per_repeat = {
        "kafka_producer_raw": single,
        "ferretdb_raw": sink,
        "redis_raw": sink,
        # the whole app waits for the pool to count each repeat's votes (batches: about as long again)
        "serve_http_batch": batch + plan.batch_duration_s,
        "serve_grpc_batch": batch + plan.batch_duration_s,
        "system_single": plan.system_warmup_s + plan.system_duration_s + 6.0,
        "system_batch": plan.system_warmup_s + plan.system_duration_s + 6.0,
        "e2e_latency": plan.warmup_s + plan.e2e_duration_s + 3.0,
        "persist": (
            len(plan.persist_replicas)
            * len(plan.persist_write_concerns)
            * (plan.persist_records / 4000 + 8.0)
        ),
    }
    total = 0.0
    for name in chosen:
        seconds = per_repeat.get(name, batch if "batch" in name else single)
        copies = len(modes) if group_of(name) in MODE_GROUPS else 1
        total += copies * plan.repeats_of(name) * seconds
    total += len(modes) * SERVE_START_STOP_S * len(serve_instances(chosen))
    total += PEER_START_S * sum(1 for name in chosen if group_of(name) in ("peer", "seed"))
    if "persist" in chosen:
        total += plan.persist_records / 8000 + 10.0  # the preload
    if BATCH_TRANSACTIONS_SCENARIO in chosen and len(plan.batch_transactions) > 1:
        # the variant's own ingest-only `serve run`, and its repeats
        variant = (
            min(plan.repeats, plan.variant_repeats) * (len(plan.batch_transactions) - 1) * batch
        )
        total += len(modes) * (SERVE_START_STOP_S + variant)
    return total


def duration_text(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


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
        self.expected_s = 0.0
        # What the CPU meter counts besides the stack: a peer's pid, our serve run's process group.
        self.measured_pids: dict[int, str] = {}
        self.measured_groups: list[int] = []
        self.profiled: set[str] = set()
        # system_*: the rate the lag-bounded load ended at, where the next repeat starts.
        self.system_rates: dict[str, float] = {}
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
                raise SystemExit(
                    f"{name} is not answering on 127.0.0.1:{port}: run `make stack-up`"
                )

    def progress(self) -> str:
        return (
            f"{duration_text(time.monotonic() - self.started)} of ~{duration_text(self.expected_s)}"
        )

    def repeat(
        self,
        name: str,
        run: Callable[[], dict[str, Any]],
        repeats: int | None = None,
        numbered: tuple[int, int] | None = None,
    ) -> list[dict[str, Any]]:
        """Run the repeats of a scenario (its plan's, or `repeats`); a repeat during which a stack
        part restarted (another session's fault test) is thrown away and run again, once.
        `numbered`: one repeat's place among its scenario's (k, n), for the log (variants)."""
        runs = []
        repeats = self.plan.repeats_of(name) if repeats is None else repeats
        for index in range(repeats):
            for attempt in range(2):
                pids = self.stack_pids()
                load = os.getloadavg()[0]
                meter = CpuMeter(
                    {pid: part for part, pid in pids.items() if pid} | self.measured_pids,
                    self.measured_groups,
                )
                meter.start()
                try:
                    result = run()
                except Exception as exc:  # noqa: BLE001 - reported as a failed repeat
                    log(f"{name} #{index + 1}: FAILED: {type(exc).__name__}: {exc}")
                    result = {
                        "votes_per_s": None,
                        "errors": 1,
                        "reconciled": False,
                        "failure": f"{type(exc).__name__}: {exc}",
                    }
                result["cpu_s"] = meter.stop() | result.pop("extra_cpu_s", {})
                result["wall_s"] = round(meter.wall_s, 2)
                if self.measured_groups:
                    result["replicas_at_end"] = replica_counts(self.measured_groups)
                result["loadavg_1m_before"] = round(load, 2)
                disturbed = self.stack_pids() != pids
                if disturbed and attempt == 0:
                    log(
                        f"{name} #{index + 1}: a stack part restarted during the repeat; running it again"
                    )
                    continue
                result["disturbed"] = disturbed
                break
            place, total = numbered or (index + 1, repeats)
            log(f"{name} #{place}/{total}: {short(result)} [{self.progress()}]")
            runs.append(result)
        return runs

    def record(self, name: str, runs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        profile = next((run["profile"] for run in runs if run.get("profile")), None)
        if profile:
            extra["profile"] = profile
        scenario = (
            summarize_runs(name, runs)
            | extra
            | {
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "plan": {
                    "warmup_s": self.plan.warmup_s,
                    "duration_s": self.plan.duration_s,
                    "batch_duration_s": self.plan.batch_duration_s,
                    "repeats": self.plan.repeats_of(name),
                },
            }
        )
        self.scenarios.append(scenario)
        return scenario

    def variant_repeats(
        self,
        variants: Variants,
        chosen: list[str],
        names: dict[str, str],
        run: Callable[[str], dict[str, Any]],
        repeats: int,
    ) -> dict[str, list[dict[str, Any]]]:
        """The repeats of a scenario under each chosen value (`names`: value -> scenario name), in
        the order of `interleaved`; a baseline repeat that had a variant's beside it is marked
        `interleaved` (the report's ratio takes those). With one value: its repeats in a row."""
        runs: dict[str, list[dict[str, Any]]] = {value: [] for value in chosen}
        if len(chosen) == 1:
            runs[chosen[0]] = self.repeat(names[chosen[0]], lambda: run(chosen[0]), repeats=repeats)
            return runs
        paired = min(repeats, self.plan.variant_repeats)
        log(
            f"{names[chosen[0]]}: {variants.setting} {' vs '.join(chosen)}, {paired} repeats of each "
            f"interleaved"
            + (f", then {repeats - paired} more of {chosen[0]}" if repeats > paired else "")
        )
        for value in interleaved(chosen, repeats, paired):
            total = repeats if value == chosen[0] else paired
            (result,) = self.repeat(
                names[value],
                lambda v=value: run(v),
                repeats=1,
                numbered=(len(runs[value]) + 1, total),
            )
            result["interleaved"] = value != chosen[0] or len(runs[value]) < paired
            runs[value].append(result)
        return runs

    def skip(self, name: str, reason: str, **extra: Any) -> None:
        """A scenario that could not run here (no Rust or Go): a line in the report, not a failure."""
        log(f"{name}: skipped: {reason}")
        self.scenarios.append(
            {
                "name": name,
                "skipped": reason,
                "votes_per_s": None,
                "errors": 0,
                "reconciled": True,
                "repeats": 0,
                "runs": [],
            }
            | extra
        )

    def find(self, name: str) -> dict[str, Any] | None:
        return next((s for s in self.scenarios if s["name"] == name), None)

    def new_topic(self, what: str, dlq: bool = False) -> str:
        topic = self.names.topic_for(what)
        self.topics.append(topic)
        create_topics([topic])
        if dlq:
            self.topics.append(topic + ".dlq")
            create_topics([topic + ".dlq"], partitions=1)
        return topic

    # -- raw --

    def raw(self, chosen: list[str]) -> None:
        from bench import sinks

        plan = self.plan
        if "kafka_producer_raw" in chosen:
            topic = self.new_topic("raw")
            self.record(
                "kafka_producer_raw",
                self.repeat(
                    "kafka_producer_raw",
                    lambda: sinks.kafka_producer_raw(topic, plan.warmup_s, plan.duration_s),
                ),
                unit="vote records",
                path="raw",
            )
        if "ferretdb_raw" in chosen:
            self.record(
                "ferretdb_raw",
                self.repeat(
                    "ferretdb_raw",
                    lambda: sinks.ferretdb_raw(
                        self.names.mongo_database_for(f"raw_{time.monotonic_ns() % 10**6}"),
                        min(plan.warmup_s, 1.0),
                        max(2.0, plan.duration_s / 2),
                    ),
                ),
                unit="vote documents",
                path="raw",
            )
        if "redis_raw" in chosen:
            # Keys under a per-run prefix, in the benchmark's own database: safe next to anything.
            self.record(
                "redis_raw",
                self.repeat(
                    "redis_raw",
                    lambda: sinks.redis_raw(
                        self.names.redis_prefix("raw"),
                        min(plan.warmup_s, 1.0),
                        max(2.0, plan.duration_s / 2),
                        db=self.args.persist_redis_db,
                    ),
                ),
                unit="votes counted",
                path="raw",
            )

    # -- ingestion through a server (peers, the seed, Serve) --

    def ingest(
        self,
        name: str,
        *,
        protocol: str,
        kind: str,
        http: tuple[str, int] | None = None,
        grpc_target: str | None = None,
        topic: str | None,
        counter_db: int | None = None,
        path: str | None = None,
    ) -> dict[str, Any]:
        """One repeat: load, then reconcile against Kafka (and the counters, when given). Without
        a topic (the no-op floor) every request must have been answered with success."""
        plan = self.plan
        duration = plan.batch_duration_s if kind == "batch" else plan.duration_s
        conc = plan.batch_concurrency if kind == "batch" else plan.concurrency
        counters = (
            redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=counter_db)
            if counter_db is not None
            else None
        )
        counted_before = int(counters.get(rc.TOTAL) or 0) if counters else 0
        records_before = readable_records(topic) if topic else 0
        tag = f"{self.names.run_id}{name[:1]}{time.monotonic_ns() % 10**8}"
        # The first repeat of each Serve scenario is profiled (py-spy --nonblocking: the sampled
        # process is not paused, so the rate stays comparable).
        profiler = None
        if self.args.profile and self.measured_groups and name not in self.profiled:
            self.profiled.add(name)
            profiler = Profiler(
                self.args.out / "profiles", name, self.measured_groups[0], plan.warmup_s + duration
            )
        with profiler or contextlib.nullcontext():
            if protocol == "http":
                assert http is not None
                path = path or ("/votes/batch" if kind == "batch" else "/votes")
                result = loadgen.run_http(
                    http[0],
                    http[1],
                    path,
                    loadgen.Bodies(kind, tag),
                    concurrency=conc,
                    warmup_s=plan.warmup_s,
                    duration_s=duration,
                )
            else:
                assert grpc_target is not None
                result = loadgen.run_grpc(
                    grpc_target,
                    loadgen.GrpcMessages(kind, tag),
                    concurrency=conc,
                    warmup_s=plan.warmup_s,
                    duration_s=duration,
                )
        summary = result.summary() | {
            "concurrency": conc,
            "accepted_requests": result.accepted_requests,
        }
        if profiler is not None:
            summary["profile"] = profiler.result
        accepted = result.accepted_votes
        if topic is None:
            answered = result.accepted_requests + result.error_count
            summary["reconciled"] = result.error_count == 0 and result.accepted_requests > 0
            summary["reconciliation"] = (
                f"answered with success {result.accepted_requests} of {answered} requests"
            )
            return summary
        records = readable_records(topic) - records_before
        summary["kafka_records"] = records
        reconciled = records == accepted
        text = f"accepted {accepted} == records in Kafka {records}"
        if counters is not None:
            target = counted_before + records
            drain_started = time.monotonic()
            reached = wait_for_count(
                lambda: int(counters.get(rc.TOTAL) or 0), target, plan.drain_timeout_s
            )
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
        return summary

    def peer_env(self, topic: str) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("VOTES_")} | {
            "VOTES_KAFKA_BOOTSTRAP_SERVERS": KAFKA,
            "VOTES_KAFKA_TOPIC": topic,
        }

    @contextlib.contextmanager
    def peer_process(
        self,
        name: str,
        argv: list[str],
        port: int,
        env: dict[str, str],
        label: str = "peer",
        keep: dict[int, str] | None = None,
    ) -> Iterator[Proc]:
        """A peer process, counted by the CPU meter as `label` (next to `keep`) while it serves."""
        peer = Proc(name, argv, env=env)
        self.measured_pids = dict(keep or {}) | {peer.pid: label}
        try:
            wait_until(
                lambda: port_open("127.0.0.1", port),
                60,
                f"the {name} peer",
                every_s=0.25,
                alive=peer.alive,
            )
            yield peer
        finally:
            peer.stop()
            self.measured_pids = dict(keep or {})

    def peers(self, chosen: list[str]) -> None:
        topic = self.new_topic("peer")
        env = self.peer_env(topic)
        http_names = [n for n in ("plain_http_peer", "plain_http_peer_batch") if n in chosen]
        if http_names:
            port = free_port(PORT_RANGE)
            argv = [
                PY,
                "-m",
                "uvicorn",
                "bench.peers.plain_http:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
            ]
            with self.peer_process("peer-http", argv, port, env):
                self.warm_http(("127.0.0.1", port))
                for name in http_names:
                    kind = "batch" if name.endswith("_batch") else "single"
                    self.record(
                        name,
                        self.repeat(
                            name,
                            lambda n=name, k=kind: self.ingest(
                                n, protocol="http", kind=k, http=("127.0.0.1", port), topic=topic
                            ),
                        ),
                        path="http",
                        kind=kind,
                        server="uvicorn+starlette, 1 worker",
                    )
        grpc_names = [n for n in ("plain_grpc_peer", "plain_grpc_peer_batch") if n in chosen]
        if grpc_names:
            port = free_port(PORT_RANGE)
            with self.peer_process(
                "peer-grpc", [PY, "-m", "bench.peers.plain_grpc", "--port", str(port)], port, env
            ):
                for name in grpc_names:
                    kind = "batch" if name.endswith("_batch") else "single"
                    self.record(
                        name,
                        self.repeat(
                            name,
                            lambda n=name, k=kind: self.ingest(
                                n,
                                protocol="grpc",
                                kind=k,
                                grpc_target=f"127.0.0.1:{port}",
                                topic=topic,
                            ),
                        ),
                        path="grpc",
                        kind=kind,
                        server="grpc.aio, 1 process",
                    )

    def warm_http(self, http: tuple[str, int]) -> None:
        with contextlib.suppress(Exception):
            loadgen.run_http(
                http[0],
                http[1],
                "/healthz",
                loadgen.Bodies("single", "warm"),
                concurrency=1,
                warmup_s=0,
                duration_s=0.1,
            )

    # -- the seed's peers --

    def seed(self, chosen: list[str]) -> None:
        wanted = [n for n in GROUPS["seed"] if n in chosen]
        if seed_peers is None:
            for name in wanted:
                self.skip(name, "bench/seed_peers.py is not in this checkout", group="seed")
            return
        log("seed: building the seed's peers (cached after the first build)")
        built: dict[str, Path | str] = seed_peers.build(log)
        runnable = []
        for name in wanted:
            missing = [
                f"{b}: {built.get(b)}"
                for b in SEED_SCENARIOS[name][3]
                if not isinstance(built.get(b), Path)
            ]
            if missing:
                self.skip(name, "; ".join(missing), group="seed")
            else:
                runnable.append(name)
        if not runnable:
            return
        topic = self.new_topic("seed")
        env = self.peer_env(topic)

        def argv(peer: str, port: int, upstream: str | None = None) -> list[str]:
            assert seed_peers is not None
            binary = built[peer]
            assert isinstance(binary, Path)
            return seed_peers.command(
                peer, port=port, bootstrap=KAFKA, topic=topic, upstream=upstream, binary=binary
            )

        rust = [n for n in runnable if SEED_SCENARIOS[n][3] == ("seed_rust_http",)]
        if rust:
            port = free_port(PORT_RANGE)
            with self.peer_process("seed_rust_http", argv("seed_rust_http", port), port, env):
                self.seed_scenarios(rust, ("127.0.0.1", port), None, topic)
        go = [n for n in runnable if "seed_go_grpc" in SEED_SCENARIOS[n][3]]
        if go:
            port = free_port(PORT_RANGE)
            target = f"127.0.0.1:{port}"
            with self.peer_process("seed_go_grpc", argv("seed_go_grpc", port), port, env) as server:
                self.seed_scenarios(
                    [n for n in go if n != "seed_go_http_grpc"], None, target, topic
                )
                if "seed_go_http_grpc" in go:
                    client_port = free_port(PORT_RANGE)
                    with self.peer_process(
                        "seed_go_http_client",
                        argv("seed_go_http_client", client_port, target),
                        client_port,
                        env,
                        label="peer_client",
                        keep={server.pid: "peer"},
                    ):
                        self.seed_scenarios(
                            ["seed_go_http_grpc"], ("127.0.0.1", client_port), None, topic
                        )

    def seed_scenarios(
        self, names: list[str], http: tuple[str, int] | None, grpc_target: str | None, topic: str
    ) -> None:
        for name in names:
            protocol, kind, path, builds = SEED_SCENARIOS[name]
            self.record(
                name,
                self.repeat(
                    name,
                    lambda n=name, p=protocol, k=kind, h=path: self.ingest(
                        n,
                        protocol=p,
                        kind=k,
                        http=http,
                        grpc_target=grpc_target,
                        topic=topic,
                        path=h,
                    ),
                ),
                path=protocol,
                kind=kind,
                group="seed",
                builds=list(builds),
                route=path
                or ("votes.v1.VoteService/" + ("CastBatch" if kind == "batch" else "Cast")),
            )

    # -- Serve --

    def serve_args(
        self, label: str, settings: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], str]:
        topic = self.new_topic(f"serve-{label}", dlq=True)
        extra = dict(item.split("=", 1) for item in self.args.app_arg) | (settings or {})
        return extra | {
            "kafka_bootstrap_servers": KAFKA,
            "kafka_topic": topic,
            "kafka_dlq_topic": topic + ".dlq",
            "kafka_consumer_group": self.names.group_for(f"serve-{label}"),
            "redis_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.args.redis_db}",
            "mongo_url": MONGO_URL,
            "mongo_database": self.names.mongo_database_for(f"serve_{label}".replace("-", "_")),
        }, topic

    def overrides(self) -> dict[str, dict[str, Any]]:
        overrides: dict[str, dict[str, Any]] = {}
        if self.args.ingress_max_ongoing:
            overrides.setdefault("VoteIngress", {})["max_ongoing_requests"] = (
                self.args.ingress_max_ongoing
            )
        if self.args.ingress_replicas:
            overrides.setdefault("VoteIngress", {})["num_replicas"] = self.args.ingress_replicas
        if self.args.pool_replicas:
            overrides.setdefault("VotePersister", {})["num_replicas"] = self.args.pool_replicas
        return overrides

    @contextlib.contextmanager
    def serving(
        self,
        app: str,
        mode: str,
        import_path: str | None,
        settings: dict[str, Any] | None = None,
        beside: bool = False,
    ) -> Iterator[tuple[ServeInstance, str, float]]:
        """A `serve run` of ours in `mode` (the app: `make run`'s, or a bench.apps builder; `settings`
        on top of its args), its processes metered; its topic, database and counters removed
        afterwards. `beside`: a second one next to a running one (a variant), on the next ports."""
        counters = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=self.args.redis_db)
        if not beside:
            clear_votes_keys(
                counters
            )  # the bench's own Redis database: the app's votes:* keys only
        args, topic = self.serve_args(f"{mode}-{app}", settings)
        log(f"serve[{mode}]: {app} ({import_path or 'config.yaml'}) [{self.progress()}]")
        started = time.monotonic()
        instance: ServeInstance | None = None
        metered_before = self.measured_groups
        offset = 1 if beside else 0
        try:
            for attempt in (1, 2):  # on a busy machine a Serve part can miss its start deadline
                http_port, grpc_port, *fallback = (port + offset for port in own_ports(self.args))
                instance = ServeInstance(
                    args=args,
                    mode=mode,
                    http_port=http_port,
                    grpc_port=grpc_port,
                    config_path=self.args.serve_config,
                    import_path=import_path,
                    deployment_overrides=self.overrides(),
                    extra_env=serve_env(mode, (fallback[0], fallback[1])),
                    port_block=SERVE_PORT_BLOCK + offset * PORT_BLOCK_SIZE,
                    agent_port=free_port(PORT_RANGE) if beside else None,
                )
                try:
                    instance.start()
                    break
                except Exception as exc:
                    if attempt == 2:
                        raise
                    log(
                        f"serve[{mode}]: {app} did not start ({type(exc).__name__}: {exc}); once more"
                    )
            assert instance is not None and instance.proc is not None
            self.measured_groups = [instance.proc.pid]
            self.warm_http(("127.0.0.1", instance.http_port))
            yield instance, topic, round(time.monotonic() - started, 1)
        finally:
            self.measured_groups = metered_before
            if instance is not None:
                instance.stop()
            drop_mongo_database(args["mongo_database"])
            if not beside:
                clear_votes_keys(counters)
            counters.close()

    def serve_noop(self, chosen: list[str], mode: str) -> None:
        suffix = suffix_of(mode)
        with self.serving("noop", mode, "bench.apps:build_noop") as (instance, _topic, startup_s):
            for name, protocol in (("serve_noop_http", "http"), ("serve_noop_grpc", "grpc")):
                if name not in chosen:
                    continue
                self.record(
                    name + suffix,
                    self.repeat(
                        name + suffix,
                        lambda n=name + suffix, p=protocol: self.ingest(
                            n,
                            protocol=p,
                            kind="single",
                            http=("127.0.0.1", instance.http_port),
                            grpc_target=instance.grpc_target,
                            topic=None,
                        ),
                    ),
                    path=protocol,
                    kind="single",
                    mode=mode,
                    app="bench.apps:build_noop",
                    serve_env=instance.env_applied,
                    startup_s=startup_s,
                    unit="requests (no work)",
                )

    def serve_ingest_only(self, chosen: list[str], mode: str) -> None:
        suffix = suffix_of(mode)
        transactions = self.plan.batch_transactions
        baseline = {BATCH_TRANSACTIONS.setting: BATCH_TRANSACTIONS.values[transactions[0]]}
        with self.serving("ingest", mode, "bench.apps:build_ingest_only", baseline) as (
            instance,
            topic,
            startup_s,
        ):
            for key, (protocol, kind) in SERVE_PATHS.items():
                name = f"serve_{key}_ingest"
                if name not in chosen:
                    continue
                if name == BATCH_TRANSACTIONS_SCENARIO:
                    self.batch_transaction_variants(name, mode, instance, topic, startup_s)
                    continue
                self.record(
                    name + suffix,
                    self.repeat(
                        name + suffix,
                        lambda n=name + suffix, p=protocol, k=kind: self.ingest(
                            n,
                            protocol=p,
                            kind=k,
                            http=("127.0.0.1", instance.http_port),
                            grpc_target=instance.grpc_target,
                            topic=topic,
                        ),
                    ),
                    path=protocol,
                    kind=kind,
                    mode=mode,
                    app="bench.apps:build_ingest_only",
                    serve_env=instance.env_applied,
                    startup_s=startup_s,
                )

    def batch_transaction_variants(
        self, base: str, mode: str, instance: ServeInstance, topic: str, startup_s: float
    ) -> None:
        """serve_http_batch_ingest under each --batch-transactions value: the baseline on the
        running ingest-only app, each other value on an app of its own beside it, their repeats
        interleaved (one `serve run` per value: the setting is read when a replica starts)."""
        chosen = self.plan.batch_transactions
        names = {
            value: BATCH_TRANSACTIONS.name(base, value, chosen[0]) + suffix_of(mode)
            for value in chosen
        }
        apps: dict[str, tuple[ServeInstance, str, float]] = {
            chosen[0]: (instance, topic, startup_s)
        }
        with contextlib.ExitStack() as stack:
            for value in chosen[1:]:
                try:
                    apps[value] = stack.enter_context(
                        self.serving(
                            f"ingest-{BATCH_TRANSACTIONS.suffixes[value]}",
                            mode,
                            "bench.apps:build_ingest_only",
                            {BATCH_TRANSACTIONS.setting: BATCH_TRANSACTIONS.values[value]},
                            beside=True,
                        )
                    )
                except Exception as exc:  # noqa: BLE001 - the baseline and the other scenarios still run
                    log(f"{names[value]}: FAILED: {type(exc).__name__}: {exc}")
                    self.scenarios.append(
                        {
                            "name": f"{names[value]} (failed)",
                            "votes_per_s": None,
                            "errors": 1,
                            "reconciled": False,
                            "failure": f"{type(exc).__name__}: {exc}",
                        }
                    )
            chosen = [value for value in chosen if value in apps]

            def one(value: str) -> dict[str, Any]:
                app, app_topic, _ = apps[value]
                assert app.proc is not None
                self.measured_groups = [app.proc.pid]  # the CPU meter and the profiler: this app's
                return self.ingest(
                    names[value],
                    protocol="http",
                    kind="batch",
                    http=("127.0.0.1", app.http_port),
                    grpc_target=app.grpc_target,
                    topic=app_topic,
                )

            runs = self.variant_repeats(
                BATCH_TRANSACTIONS, chosen, names, one, self.plan.repeats_of(base)
            )
            assert instance.proc is not None
            self.measured_groups = [instance.proc.pid]
        for value in chosen:
            app, _, app_startup_s = apps[value]
            self.record(
                names[value],
                runs[value],
                path="http",
                kind="batch",
                mode=mode,
                app="bench.apps:build_ingest_only",
                serve_env=app.env_applied,
                startup_s=app_startup_s,
                **(
                    BATCH_TRANSACTIONS.info(value, chosen, names[chosen[0]])
                    if len(chosen) > 1
                    else {}
                ),
            )

    def serve_whole(self, chosen: list[str], mode: str) -> None:
        suffix = suffix_of(mode)
        with self.serving("whole", mode, None) as (instance, topic, startup_s):
            http = ("127.0.0.1", instance.http_port)
            for key, (protocol, kind) in SERVE_PATHS.items():
                name = f"serve_{key}"
                if name not in chosen:
                    continue
                self.record(
                    name + suffix,
                    self.repeat(
                        name + suffix,
                        lambda n=name + suffix, p=protocol, k=kind: self.ingest(
                            n,
                            protocol=p,
                            kind=k,
                            http=http,
                            grpc_target=instance.grpc_target,
                            topic=topic,
                            counter_db=self.args.redis_db,
                        ),
                    ),
                    path=protocol,
                    kind=kind,
                    mode=mode,
                    serve_env=instance.env_applied,
                    startup_s=startup_s,
                )

    def serve_system(self, chosen: list[str], mode: str, last_mode: bool) -> None:
        """system_* and e2e_latency on an app of their own: the closed-loop batches of serve_whole
        leave the pool scaled out for minutes, and these measure the app from its configured start."""
        with self.serving("system", mode, None) as (instance, topic, _startup_s):
            for kind in ("single", "batch"):
                if f"system_{kind}" in chosen:
                    self.system(instance, topic, kind, mode)
            if "e2e_latency" in chosen and last_mode:
                self.e2e(instance, topic)

    def system_protocol(self, kind: str, suffix: str) -> str:
        """--system-protocol, or auto: the protocol whose ingest-only rate was higher in this run."""
        if self.args.system_protocol != "auto":
            return str(self.args.system_protocol)
        rates = {
            p: (self.find(f"serve_{p}_{kind}_ingest{suffix}") or {}).get("votes_per_s") or 0.0
            for p in ("http", "grpc")
        }
        return "grpc" if rates["grpc"] > rates["http"] else "http"

    def system(self, instance: ServeInstance, topic: str, kind: str, mode: str) -> None:
        from bench.system import system_run

        suffix = suffix_of(mode)
        name = f"system_{kind}{suffix}"
        protocol = self.system_protocol(kind, suffix)
        ingest = (self.find(f"serve_{protocol}_{kind}_ingest{suffix}") or {}).get("votes_per_s")
        # Start where the ingress alone could go at half speed; the controller takes it from there.
        self.system_rates[name] = 0.5 * ingest if ingest else (3000.0 if kind == "batch" else 300.0)
        min_rate = 1000.0 if kind == "batch" else 20.0
        plan = self.plan

        def one() -> dict[str, Any]:
            result = system_run(
                protocol=protocol,
                kind=kind,
                topic=topic,
                redis_db=self.args.redis_db,
                concurrency=plan.batch_concurrency if kind == "batch" else plan.concurrency,
                warmup_s=plan.system_warmup_s,
                duration_s=plan.system_duration_s,
                start_rate=max(min_rate, self.system_rates[name]),
                min_rate=min_rate,
                run_tag=f"{self.names.run_id}s{time.monotonic_ns() % 10**8}",
                drain_timeout_s=plan.drain_timeout_s,
                http=("127.0.0.1", instance.http_port),
                grpc_target=instance.grpc_target,
                controlled=self.args.system_load == "lag-bounded",
            )
            if result.get("offered_rate_end"):
                self.system_rates[name] = result["offered_rate_end"]
            return result

        self.record(
            name,
            self.repeat(name, one),
            path=protocol,
            kind=kind,
            mode=mode,
            load=self.args.system_load,
            serve_env=instance.env_applied,
            note="votes_per_s: the lower of votes/s accepted and votes/s persisted in the window",
        )

    def e2e(self, instance: ServeInstance, topic: str) -> None:
        rate = self.args.e2e_rate
        suffix = suffix_of(instance.mode)
        if rate is None:
            best = [
                s["votes_per_s"]
                for n in ("serve_http_single", "serve_grpc_single")
                if (s := self.find(n + suffix)) and s.get("votes_per_s")
            ]
            rate = 0.5 * max(best) if best else 100.0
        rate = max(5.0, rate)
        from bench.e2e import e2e_latency

        runs = self.repeat(
            "e2e_latency",
            lambda: e2e_latency(
                instance.http_url,
                topic,
                self.args.redis_db,
                rate=rate,
                warmup_s=self.plan.warmup_s,
                duration_s=self.plan.e2e_duration_s,
                run_tag=self.names.run_id,
                drain_timeout_s=self.plan.drain_timeout_s,
            ),
        )
        self.record(
            "e2e_latency",
            runs,
            path="http",
            rate_votes_per_s=round(rate, 1),
            mode=instance.mode,
            note="p50/p99: a vote's 202 -> its band's count visible in Redis (what /results reads)",
        )

    # -- persist --

    def persist(self) -> None:
        from bench.persist import persist_run, preload

        topic = self.new_topic("persist", dlq=True)
        db = self.args.persist_redis_db
        guard = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
        foreign = [
            k
            for k in guard.scan_iter(count=100)
            if not k.decode(errors="replace").startswith("votes:")
        ]
        guard.close()
        if foreign:
            raise SystemExit(
                f"Redis database {db} holds other data ({foreign[:3]}...): pick another "
                "with --persist-redis-db"
            )
        log(f"persist: preloading {self.plan.persist_records} records")
        records = preload(topic, self.plan.persist_records)
        timeout = max(60.0, records / 200)
        concerns = self.plan.persist_write_concerns
        for replicas in self.plan.persist_replicas:

            def one(r: int = replicas, concern: str | None = None) -> dict[str, Any]:
                run_id = time.monotonic_ns() % 10**8
                return persist_run(
                    topic,
                    self.names.group_for(f"persist-{r}-{run_id}"),
                    self.names.mongo_database_for(f"persist_{r}_{run_id}"),
                    db,
                    records,
                    r,
                    timeout,
                    write_concern=concern,
                )

            names = {concern: persist_name(replicas, concern, concerns[0]) for concern in concerns}
            runs = self.variant_repeats(
                WRITE_CONCERNS,
                concerns,
                names,
                lambda c, r=replicas: one(r, c),
                self.plan.repeats_of("persist"),
            )
            for concern in concerns:
                self.record(
                    names[concern],
                    runs[concern],
                    path="pool",
                    replicas=replicas,
                    records=records,
                    write_concern=concern,
                    write_concern_baseline=concerns[0],
                    unit="votes persisted (Mongo log + Redis counters + commit)",
                    **(
                        WRITE_CONCERNS.info(concern, concerns, names[concerns[0]])
                        if len(concerns) > 1
                        else {}
                    ),
                )

    # -- all --

    def steps(
        self, chosen: list[str], modes: list[str]
    ) -> list[tuple[str, set[str], Callable[[], None]]]:
        """(label, the groups it measures, what runs it), in the order of the run."""
        steps: list[tuple[str, set[str], Callable[[], None]]] = [
            ("raw", {"raw"}, lambda: self.raw(chosen)),
            ("peer", {"peer"}, lambda: self.peers(chosen)),
            ("seed", {"seed"}, lambda: self.seed(chosen)),
        ]
        for mode in modes:
            steps += [
                (f"noop{suffix_of(mode)}", {"noop"}, lambda m=mode: self.serve_noop(chosen, m)),
                (
                    f"ingest{suffix_of(mode)}",
                    {"ingest"},
                    lambda m=mode: self.serve_ingest_only(chosen, m),
                ),
                (f"serve{suffix_of(mode)}", {"serve"}, lambda m=mode: self.serve_whole(chosen, m)),
                (
                    f"system{suffix_of(mode)}",
                    {"system", "e2e"},
                    lambda m=mode: self.serve_system(chosen, m, last_mode=m == modes[-1]),
                ),
            ]
        steps.append(("persist", {"persist"}, self.persist))
        return steps

    def run(self) -> int:
        chosen = selected(self.args)
        modes = serve_modes(self.args.serve_modes)
        own_ports(self.args)
        self.check_stack()
        self.expected_s = estimate_s(self.plan, chosen, modes)
        log(
            f"run {self.names.run_id}: {', '.join(chosen)}; Serve modes {', '.join(modes)}; plan {self.plan}"
        )
        log(
            f"expected duration: ~{duration_text(self.expected_s)}"
            + (
                " (plus the seed peers' first build, if not built yet)"
                if "seed" in {group_of(n) for n in chosen}
                else ""
            )
        )
        load_before = os.getloadavg()
        groups = {group_of(name) for name in chosen}
        try:
            for label, needs, step in self.steps(chosen, modes):
                if not groups & needs:
                    continue
                try:
                    step()
                except Exception as exc:  # noqa: BLE001 - one broken group must not hide the others
                    log(f"{label}: FAILED: {type(exc).__name__}: {exc}")
                    self.scenarios.append(
                        {
                            "name": f"{label} (failed)",
                            "votes_per_s": None,
                            "errors": 1,
                            "reconciled": False,
                            "failure": f"{type(exc).__name__}: {exc}",
                        }
                    )
        finally:
            delete_topics(self.topics)
        from bench.report import write_reports

        config = self.config_info(chosen, modes)
        machine = machine_info(load_before)
        scenarios = self.merged(config, machine) if self.args.merge else list(self.scenarios)
        data = {
            "scenarios": scenarios,
            "targets": evaluate_targets(scenarios),
            "machine": machine,
            "config": config,
        }
        write_reports(data, self.args.out, chart=not self.args.no_chart)
        failed = [
            s["name"]
            for s in self.scenarios
            if not s.get("skipped") and (not s.get("reconciled") or s.get("errors"))
        ]
        log(
            f"done in {duration_text(time.monotonic() - self.started)} (expected ~{duration_text(self.expected_s)}); "
            f"wrote {self.args.out}/latest.*"
            + (f"; NOT reconciled or with errors: {', '.join(failed)}" if failed else "")
        )
        return 1 if failed else 0

    def merged(self, config: dict[str, Any], machine: dict[str, Any]) -> list[dict[str, Any]]:
        """--merge: this run's scenarios replace their namesakes in the existing latest.json."""
        previous_file = self.args.out / "latest.json"
        if not previous_file.exists():
            return list(self.scenarios)
        previous = json.loads(previous_file.read_text())
        fresh = {s["name"] for s in self.scenarios}
        fresh_groups = {group_of(name) for name in fresh}
        if "e2e" in fresh_groups:
            fresh_groups.add("system")  # the step that runs it is labelled system

        def stale_failure(name: str) -> bool:  # a step's failure record, measured again now
            step = name.split(" ")[0].split("[")[0]  # a step's label, or a variant's name
            return name.endswith(" (failed)") and (
                step in fresh_groups or group_of(step) in fresh_groups
            )

        kept = [
            s
            for s in previous.get("scenarios", [])
            if s["name"] not in fresh and not stale_failure(s["name"])
        ]
        scenarios = order_scenarios(kept + self.scenarios)
        config["merged_with"] = {
            "when": previous.get("machine", {}).get("when"),
            "kept": [s["name"] for s in kept],
            "config": previous.get("config", {}).get("merged_with")
            or {k: previous.get("config", {}).get(k) for k in ("plan", "serve_modes")},
        }
        machine["merged_with_run_of"] = previous.get("machine", {}).get("when")
        return scenarios

    def config_info(self, chosen: list[str], modes: list[str]) -> dict[str, Any]:
        app = self.config["applications"][0]
        return {
            "scenarios": chosen,
            "serve_modes": modes,
            "quick": self.args.quick,
            "plan": vars(self.plan),
            "serve_config": str(
                self.args.serve_config.relative_to(ROOT)
                if self.args.serve_config.is_relative_to(ROOT)
                else self.args.serve_config
            ),
            "deployments": app.get("deployments"),
            "kafka_linger_ms": app.get("args", {}).get("kafka_linger_ms", "default (2.0)"),
            "overrides": {
                "ingress_max_ongoing": self.args.ingress_max_ongoing,
                "ingress_replicas": self.args.ingress_replicas,
                "pool_replicas": self.args.pool_replicas,
                "app_args": self.args.app_arg,
            },
            "system_load": self.args.system_load,
            "expected_s": round(self.expected_s),
            "took_s": round(time.monotonic() - self.started),
            "loadgen": "bench.loadgen: raw HTTP/1.1 keep-alive on uvloop / grpc.aio, closed loop, "
            "pre-encoded bodies; one process",
        }


# ---- summaries -------------------------------------------------------------------------------


def order_scenarios(scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's order: by group, a Serve mode's scenarios together, persist by pool size."""
    order = {name: i for i, name in enumerate(ALL)}
    groups = list(GROUPS)

    def position(scenario: dict[str, Any]) -> tuple[int, str, int, str]:
        name = scenario["name"]
        base, _, suffix = name.partition("[")
        base = base_of(base.split(" ")[0])
        group = group_of(base) or base
        rank = order.get("persist" if base.startswith("persist") else base, len(order))
        index = groups.index(group) if group in groups else len(groups)
        if group in MODE_GROUPS:
            return (groups.index("noop"), suffix, rank, name)
        return (index, "", rank, name)

    return sorted(scenarios, key=position)


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
    if result.get("persisted_per_s") is not None:
        parts.append(
            f"accepted {result.get('accepted_per_s')}/s, persisted {result.get('persisted_per_s')}/s, "
            f"lag at end {result.get('lag_at_end')}, drain {result.get('drain_s')} s"
        )
    if result.get("p99_ms") is not None:
        parts.append(f"p50 {result.get('p50_ms')} ms, p99 {result.get('p99_ms')} ms")
    parts.append(f"errors {result.get('errors')}")
    parts.append(
        "reconciled"
        if result.get("reconciled")
        else f"NOT reconciled ({result.get('reconciliation')})"
    )
    if result.get("failure"):
        parts.append(result["failure"])
    if result.get("replicas_at_end"):
        parts.append(f"replicas {result['replicas_at_end']}")
    return "; ".join(parts)


# Besides votes/s and latencies: per-repeat figures some scenarios give (system_*, whole app).
EXTRA_STATS = ("accepted_per_s", "persisted_per_s", "lag_at_end", "drain_s", "requests_per_s")


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
    for key in EXTRA_STATS:
        median, low, high = stat(key)
        if median is not None:
            scenario[key], scenario[f"{key}_min"], scenario[f"{key}_max"] = median, low, high
    rates = [r["votes_per_s"] for r in runs if r.get("votes_per_s")]
    scenario["spread_pct"] = (
        round(100 * (max(rates) - min(rates)) / statistics.median(rates), 1)
        if len(rates) > 1
        else 0.0
    )
    scenario["errors"] = sum(int(r.get("errors") or 0) for r in runs)
    scenario["reconciled"] = bool(runs) and all(r.get("reconciled") for r in runs)
    scenario["repeats"] = len(runs)
    cpu: dict[str, float] = {}
    for run in runs:
        for part, seconds in (run.get("cpu_s") or {}).items():
            cpu[part] = cpu.get(part, 0.0) + seconds
    accepted = sum(int(r.get("accepted") or r.get("accepted_votes") or 0) for r in runs)
    if accepted and cpu:
        scenario["cpu_us_per_vote"] = {
            part: round(1e6 * s / accepted, 1) for part, s in sorted(cpu.items()) if s > 0.05
        }
    # Scenarios that measure their own steady-state window (sinks, persist) replace the whole-repeat
    # figures of the parts they measured: setup and verification (count, drop) are not the work.
    window_votes = sum(int((r.get("cpu_window") or {}).get("votes") or 0) for r in runs)
    if window_votes:
        window: dict[str, float] = {}
        for run in runs:
            for part, seconds in ((run.get("cpu_window") or {}).get("cpu_s") or {}).items():
                window[part] = window.get(part, 0.0) + seconds
        scenario.setdefault("cpu_us_per_vote", {}).update(
            {part: round(1e6 * s / window_votes, 1) for part, s in window.items()}
        )
    scenario["runs"] = runs
    return scenario


def machine_info(load_before: tuple[float, float, float]) -> dict[str, Any]:
    import ray

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ray": ray.__version__,
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
