"""What `make bench` measures and for how long: its groups, the plan, the order, the estimate."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from bench.harness.serve_instance import MODES
from bench.harness.variants import (
    BATCH_TRANSACTIONS_SCENARIO,
    VARIANTS,
    batch_transactions,
    write_concerns,
)

GROUPS = {
    "raw": ["kafka_producer_raw", "ferretdb_raw", "redis_raw"],
    "peer": [
        "plain_http_peer",
        "plain_grpc_peer",
        "plain_http_peer_batch",
        "plain_grpc_peer_batch",
        # The HTTP peer again on uvloop (uvicorn's default), beside the asyncio ones above.
        "plain_http_peer_uvloop",
        "plain_http_peer_batch_uvloop",
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
# Measured through bench.harness.measure.ingest on our `serve run`: profiled with --profile.
PROFILED_GROUPS = ("noop", "ingest", "serve")
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
    # --profile: each Serve scenario (noop, ingest, serve) runs one extra, uncounted repeat.
    profiled: bool = False

    def repeats_of(self, name: str) -> int:
        return self.repeats if group_of(name) in COMPARED_GROUPS else self.context_repeats


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
        profiled=bool(getattr(args, "profile", False)),
    )


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
        # the whole app waits for the pool to count each repeat's votes (batches: about as long
        # again)
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
        extra = 1 if plan.profiled and group_of(name) in PROFILED_GROUPS else 0
        total += copies * (plan.repeats_of(name) + extra) * seconds
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
