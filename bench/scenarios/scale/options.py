"""`make bench-scale`'s options and plan: sizes, series, windows, ports, each checked with a clear
error that names the problem."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness.env import RESULTS, ROOT
from bench.harness.fleet import loadgen_processes
from devkit.kafka import PARTITIONS
from serve_app.serve_env import PORT_BLOCK_SIZE

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


def count_list(text: str, *, what: str, maximum: int, why_maximum: str) -> list[int]:
    """'1,2,4,8' -> [1, 2, 4, 8]: whole numbers from 1 to maximum, no repeats; else a clear
    error."""
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
