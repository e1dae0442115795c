"""`make bench-scale`'s results: scaling efficiency, the CPU reading, scale.{json,md,png}.

Pure functions of the measured points (no services), so that tests/unit/bench/test_scale.py
can check them. A *point* is one series at one size: a summary of its repeats
(bench.harness.summary.summarize_runs) plus `series`, `size` (ingress replicas or consumers), and
the CPU shares of the machine during its measured windows.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.harness.report.writer import write_reports as write_files

# The machine counts as saturated from this share of all its cores busy (a busy machine never
# reaches 100%: the meter itself, interrupts and short idle gaps between requests take the rest).
SATURATED = 0.85
# CpuMeter's name for the machine's busy CPU that is not ours (other sessions).
OTHERS = "other_processes"
NOISY = 0.2  # from this share of the cores going to processes not ours, a point is noisy

# What each series is, in words, in the order of the tables.
SERIES_LABELS = {
    "http_single": "HTTP single votes (POST /votes)",
    "grpc_single": "gRPC single votes (Cast)",
    "http_batch": "HTTP batches of 1000 (POST /votes/batch)",
    "grpc_batch": "gRPC batches of 1000 (CastBatch)",
    "persist": "persist: the pool's consumers draining a preloaded topic",
}

# Process classes (bench.harness.cpu.classify and the scale driver's own) in words.
PART_LABELS = {
    "serve_ingress_replica": "ingress replicas",
    "haproxy": "HAProxy",
    "serve_proxy": "Serve proxy",
    "serve_pool_replica": "idle pool replica",
    "serve_controller": "Serve controller",
    "serve_other_replica": "other Serve replicas",
    "ray_system": "Ray's own processes",
    "pool_worker": "consumers",
    "kafka": "Kafka",
    "redis": "Redis",
    "ferretdb": "FerretDB",
    "loadgen": "load generators",
    "loadgen_and_bench": "bench driver",
    "other_processes": "other processes (not ours)",
}


# ---- figures -----------------------------------------------------------------------------


def efficiency(rates: dict[int, float | None]) -> dict[int, float | None]:
    """rate(N) / (N x rate(1)) for each size N; None where a rate (or the rate at 1) is missing."""
    base = rates.get(1)
    result: dict[int, float | None] = {}
    for size, rate in rates.items():
        if not base or rate is None:
            result[size] = None
        else:
            result[size] = round(rate / (size * base), 3)
    return result


def cpu_shares(cpu_s: dict[str, float], wall_s: float, cores: int) -> dict[str, float]:
    """Each process class's CPU seconds as a share of all the machine's cores over wall_s."""
    if wall_s <= 0 or cores <= 0:
        raise ValueError(
            f"cpu_shares needs a positive window and core count (got {wall_s}, {cores})"
        )
    capacity = wall_s * cores
    return {part: round(seconds / capacity, 4) for part, seconds in cpu_s.items()}


def point_cpu(runs: Iterable[dict[str, Any]]) -> tuple[float | None, dict[str, float]]:
    """The median busy share of the machine over the repeats, and each class's mean share."""
    shares = [run["cpu_share"] for run in runs if run.get("cpu_share")]
    if not shares:
        return None, {}
    busy = round(statistics.median(sum(share.values()) for share in shares), 4)
    parts = sorted({part for share in shares for part in share})
    mean = {
        part: round(sum(share.get(part, 0.0) for share in shares) / len(shares), 4)
        for part in parts
    }
    return busy, mean


def add_efficiency(points: list[dict[str, Any]]) -> None:
    """Set each point's `efficiency` from the medians of its series."""
    for series in {point["series"] for point in points}:
        mine = [point for point in points if point["series"] == series]
        ratios = efficiency({point["size"]: point.get("votes_per_s") for point in mine})
        for point in mine:
            point["efficiency"] = ratios[point["size"]]


# ---- Markdown ----------------------------------------------------------------------------


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def _spread(point: dict[str, Any]) -> str:
    low, high = point.get("votes_per_s_min"), point.get("votes_per_s_max")
    if low is None or high is None or point.get("repeats", 1) < 2:
        return "-"
    return f"{low:,.0f}-{high:,.0f}"


def _clean(point: dict[str, Any]) -> str:
    if point.get("reconciled") and not point.get("errors"):
        return "yes"
    return f"**NO** ({point.get('errors', 0)} errors)"


def by_series(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points grouped by series (in the order the series first appear), each by size."""
    order = {series: i for i, series in enumerate(dict.fromkeys(p["series"] for p in points))}
    return sorted(points, key=lambda p: (order[p["series"]], p["size"]))


def ingest_table(points: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        (
            "| series | replicas | votes/s (median) | spread (min-max) | efficiency | "
            "cores busy | p99 ms | clean |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for p in by_series(points):
        lines.append(
            f"| {p['series']} | {p['size']} | {_num(p.get('votes_per_s'))} | {_spread(p)} | "
            f"{_num(p.get('efficiency'), 2)} | {_pct(p.get('busy_share'))} | "
            f"{_num(p.get('p99_ms'), 0)} | {_clean(p)} |"
        )
    return lines


def persist_table(points: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "| consumers | votes/s (median) | spread (min-max) | efficiency | cores busy | clean |",
        "| ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for p in points:
        lines.append(
            f"| {p['size']} | {_num(p.get('votes_per_s'))} | {_spread(p)} | "
            f"{_num(p.get('efficiency'), 2)} | {_pct(p.get('busy_share'))} | {_clean(p)} |"
        )
    return lines


def cpu_table(points: Sequence[dict[str, Any]]) -> list[str]:
    rows = [p for p in by_series(points) if p.get("cpu_share")]
    if not rows:
        return []
    order = list(PART_LABELS)
    present = {part for p in rows for part, share in p["cpu_share"].items() if share >= 0.005}
    parts = [part for part in order if part in present] + sorted(present - set(order))
    lines = [
        "| series | size | busy | " + " | ".join(PART_LABELS.get(p, p) for p in parts) + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in parts) + " |",
    ]
    for p in rows:
        lines.append(
            f"| {p['series']} | {p['size']} | {_pct(p.get('busy_share'))} | "
            + " | ".join(_pct(p["cpu_share"].get(part)) for part in parts)
            + " |"
        )
    return lines


def top_parts(shares: dict[str, float], count: int = 3) -> str:
    ranked = sorted(shares.items(), key=lambda item: -item[1])[:count]
    return ", ".join(f"{PART_LABELS.get(part, part)} {100 * share:.0f}%" for part, share in ranked)


def counted(size: int, what: str) -> str:
    """'1 replica', '2 replicas' (what: the plural)."""
    return f"{size} {what[:-1] if size == 1 else what}"


def saturation_reading(
    points: Sequence[dict[str, Any]], cores: int, what: str = "replicas"
) -> list[str]:
    """For each series: from which size the machine's cores are saturated, and by whom."""
    lines = []
    for series in dict.fromkeys(p["series"] for p in points):
        mine = sorted((p for p in points if p["series"] == series), key=lambda p: p["size"])
        measured = [p for p in mine if p.get("busy_share") is not None]
        if not measured:
            continue
        first = next((p for p in measured if p["busy_share"] >= SATURATED), None)
        shown = first or measured[-1]
        shares = dict(shown.get("cpu_share") or {})
        others = shares.pop(OTHERS, 0.0)
        where = (
            f"at {counted(shown['size'], what)} the machine's {cores} cores are "
            f"{_pct(shown['busy_share'])} busy: this benchmark {_pct(sum(shares.values()))} "
            f"({top_parts(shares)}), other processes {_pct(others)}"
        )
        if first is not None and others >= NOISY:
            lines.append(
                f"- {series}: {where}: saturated by other processes' load, not by "
                f"scale-out; re-run on a quiet machine to read this series."
            )
            continue
        if first is None:
            lines.append(
                f"- {series}: not saturated up to {counted(shown['size'], what)}: {where}; "
                "the limit is elsewhere (latency, a serial part), not the cores."
            )
            continue
        later = [p for p in mine if p["size"] > first["size"] and p.get("efficiency") is not None]
        tail = ""
        if later:
            tail = f"; past it more {what} only share the same cores: efficiency " + ", ".join(
                f"{_num(p['efficiency'], 2)} at {p['size']}" for p in later
            )
        lines.append(f"- {series}: saturated from {counted(first['size'], what)}: {where}{tail}.")
    return lines


def caveats(
    points: Sequence[dict[str, Any]], cores: int, loadgen_processes: int | None
) -> list[str]:
    """What may make the rates lower than the servers' own limit: other sessions' load, and load
    generators near the end of their cores."""
    lines = []
    noisy = [p for p in points if (p.get("cpu_share") or {}).get(OTHERS, 0.0) >= NOISY]
    if noisy:
        worst = max(noisy, key=lambda p: p["cpu_share"][OTHERS])
        lines.append(
            f"- Noise: processes not of this benchmark took {_pct(NOISY)} or more of the "
            f"cores at {len(noisy)} of {len(points)} points (up to "
            f"{_pct(worst['cpu_share'][OTHERS])}, {worst['series']} at {worst['size']}); "
            "those rates are lower than this machine gives when quiet."
        )
    if loadgen_processes:
        limit = 0.8 * loadgen_processes / cores  # 80% of the cores the load generators can have
        busy = [
            p
            for p in points
            if p["series"] != "persist" and (p.get("cpu_share") or {}).get("loadgen", 0.0) >= limit
        ]
        for p in busy:
            use = p["cpu_share"]["loadgen"] * cores / loadgen_processes
            lines.append(
                f"- {p['series']} at {p['size']}: the {loadgen_processes} load-generator "
                f"process(es) ran at {_pct(use)} of a core each: they may be what limits "
                "this point (more with --loadgen-procs on a machine with cores to spare)."
            )
    return lines


def _num_cpus(by_size: dict[Any, float]) -> str:
    """{1: 0.5, 2: 0.5, 8: 0.25} -> '0.5 at 1, 2 replicas; 0.25 at 8 replicas'."""
    groups: dict[float, list[str]] = {}
    for size, cpus in sorted(by_size.items(), key=lambda item: int(item[0])):
        groups.setdefault(cpus, []).append(str(size))
    return "; ".join(
        f"{cpus} at {', '.join(sizes)} replica{'s' if sizes != ['1'] else ''}"
        for cpus, sizes in groups.items()
    )


def markdown(data: dict[str, Any]) -> str:
    machine, config = data["machine"], data["config"]
    cores = machine["cpus"]
    plan = config["plan"]
    out = [
        "# votes: scale-out, measured",
        "",
        (
            f"{machine['when']} on {cores} cores ({machine.get('cpu_model') or 'unknown CPU'}), "
            f"Ray {machine.get('ray')}, Python {machine.get('python')}. Load average before/after: "
            f"{machine['loadavg_before'][0]} / {machine['loadavg_after'][0]}."
        ),
        "",
        (
            f"Efficiency(N) = votes/s at N / (N x votes/s at 1): 1.00 is perfect scale-out. "
            f'"Cores busy" is the CPU of every process on the machine over the measured windows, '
            "as a "
            f"share of all {cores} cores; from {_pct(SATURATED)} the machine counts as saturated "
            "and "
            "more replicas can only share the same cores."
        ),
        "",
    ]
    ingest = data.get("ingest") or []
    if ingest:
        out += [
            "## Ingest only: ingress replicas",
            "",
            (
                f"`bench.apps:build_ingest_only` (VoteIngress as `make run` builds it, the pool "
                f"idle) in Serve's {config['serve_mode']} mode with `make run`'s environment "
                "(HAProxy in front of the replicas' direct ingress; Serve's fallback proxy on "
                "ports "
                "of its own), a fresh instance per replica count; Ray's num_cpus per replica: "
                f"{_num_cpus(config['ingress_num_cpus'])} (a reservation only, so that all fit). "
                f"{config['loadgen_processes']} load-generator process(es) (closed loop; "
                f"{plan['concurrency_per_replica']} single-vote and "
                f"{plan['batch_concurrency_per_replica']} batch requests in flight per replica, "
                f"split over them). {plan['repeats']} repeat(s) of {plan['warmup_s']} s warm-up + "
                f"{plan['duration_s']} s measured; each repeat reconciled: accepted == records in "
                "Kafka."
            ),
            "",
            *ingest_table(ingest),
            "",
        ]
    persist = data.get("persist") or []
    if persist:
        out += [
            "## Persist: consumers",
            "",
            (
                f"{config.get('persist_records')} preloaded records (a "
                f"{config.get('partitions')}-partition "
                "topic) drained by N `bench.pool_worker` processes (the VotePersister loop) in a "
                "fresh "
                f"consumer group; the rate runs from the first counted vote to the last. "
                f"{plan['repeats']} repeat(s); each reconciled: records == counted in Redis == "
                "stored "
                "in MongoDB."
            ),
            "",
            *persist_table(persist),
            "",
        ]
    points = [*ingest, *persist]
    cpu = cpu_table(points)
    if cpu:
        out += [
            f"## Where the CPU goes (share of all {cores} cores, measured windows)",
            "",
            (
                "From /proc: every process of ours by class, `other processes` is the rest of the "
                "machine (other sessions: noise). Kafka, Redis and FerretDB are the local stack, "
                "shared with whatever else uses it: the ingest-only app never touches Redis or "
                "FerretDB, so their CPU during ingest is someone else's."
            ),
            "",
            *cpu,
            "",
        ]
    reading = (
        saturation_reading(ingest, cores)
        + saturation_reading(persist, cores, "consumers")
        + caveats(points, cores, config.get("loadgen_processes"))
    )
    if reading:
        out += ["## Reading", "", *reading, ""]
    out += [
        (
            "Raw data: `scale.json` (every repeat); chart: `scale.png`. Re-run: `make bench-scale` "
            "(or `.venv/bin/python -m bench.scale --help`)."
        ),
        "",
    ]
    return "\n".join(out)


def write_reports(data: dict[str, Any], out: Path, chart: bool = True) -> None:
    """scale.json, scale.md and scale.png."""
    from bench.harness.report.scale_chart import write_chart  # it reads this module's figures

    write_files(out, "scale", data, markdown, write_chart if chart else None)
