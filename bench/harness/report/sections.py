"""latest.md's tables and sections: the scenarios, CPU per vote, ingest or whole, the system,
the bounds, the targets and the notes (pure functions of the run's data)."""

from __future__ import annotations

from typing import Any

from bench.harness.targets import mode_suffixes

Scenario = dict[str, Any]


CPU_PARTS = [
    "serve_proxy",
    "haproxy",
    "serve_ingress_replica",
    "serve_pool_replica",
    "pool_worker",
    "peer",
    "peer_client",
    "serve_other_replica",
    "kafka",
    "redis",
    "ferretdb",
    "serve_controller",
    "ray_system",
    "serve_other",
    "loadgen_and_bench",
    "other_processes",
]
NOT_OURS = ("loadgen_and_bench", "other_processes")
# The four paths through Serve: (label, protocol, kind, scenario key).
SERVE_PATHS = [
    ("HTTP single", "http", "single", "http_single"),
    ("gRPC single", "grpc", "single", "grpc_single"),
    ("HTTP batch", "http", "batch", "http_batch"),
    ("gRPC batch", "grpc", "batch", "grpc_batch"),
]

Scenario = dict[str, Any]


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _spread(s: Scenario) -> str:
    low, high = s.get("votes_per_s_min"), s.get("votes_per_s_max")
    if low is None or s.get("repeats", 1) < 2:
        return "-"
    return f"{low:,.0f}-{high:,.0f} (±{s.get('spread_pct', 0) / 2:.0f}%)"


def table(scenarios: list[Scenario]) -> list[str]:
    """Each scenario's rate, with the load generator's own CPU per request beside it (the client
    shares the cores; a slower server costs it more CPU per request)."""
    lines = [
        (
            "| scenario | votes/s (median) | spread (min-max) | loadgen µs/request | repeats "
            "| p50 ms | p99 ms | errors | reconciled |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for s in scenarios:
        if s.get("skipped"):
            lines.append(f"| {s['name']} | skipped: {s['skipped']} | | | | | | | |")
            continue
        lines.append(
            f"| {s['name']} | {_num(s.get('votes_per_s'))} | {_spread(s)} | "
            f"{_num(s.get('loadgen_us_per_request'))} | {s.get('repeats', '-')} | "
            f"{_num(s.get('p50_ms'), 1)} | {_num(s.get('p99_ms'), 1)} | {s.get('errors', 0)} | "
            f"{'yes' if s.get('reconciled') else 'NO'} |"
        )
    return lines


def cpu_table(scenarios: list[Scenario]) -> list[str]:
    rows = [s for s in scenarios if s.get("cpu_us_per_vote")]
    if not rows:
        return []
    parts = [p for p in CPU_PARTS if any(p in s["cpu_us_per_vote"] for s in rows)]
    lines = [
        "| scenario | " + " | ".join(parts) + " | total |",
        "| --- | " + " | ".join("---:" for _ in parts) + " | ---: |",
    ]
    for s in rows:
        cpu = s["cpu_us_per_vote"]
        total = sum(cpu.get(p, 0) for p in parts if p not in NOT_OURS)
        lines.append(
            f"| {s['name']} | "
            + " | ".join(_num(cpu.get(p), 0) for p in parts)
            + f" | {_num(total, 0)} |"
        )
    return lines


def find(scenarios: list[Scenario], name: str) -> Scenario | None:
    return next((s for s in scenarios if s["name"] == name), None)


def rate(scenarios: list[Scenario], name: str) -> float | None:
    return (find(scenarios, name) or {}).get("votes_per_s")


# ---- ingest only and the whole system --------------------------------------------------------


def ingest_vs_whole(scenarios: list[Scenario]) -> list[str]:
    """Per Serve mode: the floor, ingest only (pool idle), the whole app, the sustained system."""
    lines: list[str] = []
    for suffix in mode_suffixes(scenarios):
        rows = []
        for label, protocol, kind, key in SERVE_PATHS:
            floor = rate(scenarios, f"serve_noop_{protocol}{suffix}") if kind == "single" else None
            ingest = rate(scenarios, f"serve_{key}_ingest{suffix}")
            whole = rate(scenarios, f"serve_{key}{suffix}")
            system = find(scenarios, f"system_{kind}{suffix}") or {}
            sustained = (
                system.get("votes_per_s")
                if (system.get("runs") or [{}])[0].get("protocol") == protocol
                else None
            )
            if all(v is None for v in (floor, ingest, whole, sustained)):
                continue
            share = f"{whole / ingest:.2f}" if whole and ingest else "-"
            rows.append(
                f"| {label} | {_num(floor)} | {_num(ingest)} | {_num(whole)} | {share} | "
                f"{_num(sustained)} |"
            )
        if rows:
            lines += [
                f"Serve mode: {suffix.strip('[]') or 'default'}",
                "",
                (
                    "| path | Serve's floor (no-op), requests/s | ingest only (pool idle) | whole "
                    "system, closed "
                    "loop, drained per repeat | whole / ingest only | whole system, sustained "
                    "(system_*) |"
                ),
                "| --- | ---: | ---: | ---: | ---: | ---: |",
                *rows,
                "",
            ]
    return lines


def system_table(scenarios: list[Scenario]) -> list[str]:
    rows = [s for s in scenarios if s["name"].startswith("system_") and not s.get("skipped")]
    if not rows:
        return []
    lines = [
        (
            "| scenario | protocol | load | sustained votes/s | accepted/s | persisted/s | lag "
            "when the load "
            "stops (votes) | drain s (median, worst) | pool replicas at the end | reconciled |"
        ),
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for s in rows:
        runs = s.get("runs") or [{}]
        pools = sorted(
            {(r.get("replicas_at_end") or {}).get("serve_pool_replica", 0) for r in runs}
        )
        lines.append(
            f"| {s['name']} | {runs[0].get('protocol', '-')} | {runs[0].get('load', '-')} | "
            f"{_num(s.get('votes_per_s'))} | {_num(s.get('accepted_per_s'))} | "
            f"{_num(s.get('persisted_per_s'))} | {_num(s.get('lag_at_end'))} | "
            f"{_num(s.get('drain_s'), 1)}, {_num(s.get('drain_s_max'), 1)} | "
            f"{', '.join(map(str, pools))} | {'yes' if s.get('reconciled') else 'NO'} |"
        )
    return lines


def bounds(scenarios: list[Scenario]) -> list[str]:
    """Where the CPU goes per vote, for the scenarios that matter: what bounds each rate."""
    lines = []
    for s in scenarios:
        cpu = {k: v for k, v in (s.get("cpu_us_per_vote") or {}).items() if k not in NOT_OURS}
        if not cpu or not s.get("votes_per_s"):
            continue
        total = sum(cpu.values())
        top = sorted(cpu.items(), key=lambda item: -item[1])[:3]
        shares = ", ".join(f"{k} {v:,.0f} µs ({100 * v / total:.0f}%)" for k, v in top)
        lines.append(f"- {s['name']}: {total:,.0f} µs of server-side CPU per vote; top: {shares}.")
    return lines


def targets_section(targets: list[dict[str, Any]]) -> list[str]:
    if not targets:
        return []
    out = [
        "## Performance targets",
        "",
        (
            "Ratio targets: the ratio of medians and its 95% bootstrap interval over "
            "the repeats; met on the point ratio."
        ),
        "",
        "| target | met | measured |",
        "| --- | :---: | --- |",
    ]
    out += [
        f"| {t['target']} | {'yes' if t['met'] else '**no**'} | {t['detail']} |" for t in targets
    ]
    return [*out, ""]


def notes(scenarios: list[Scenario]) -> list[str]:
    extra = [
        s for s in scenarios if s["name"].startswith(("persist", "e2e")) and not s.get("skipped")
    ]
    if not extra:
        return []
    out = ["## Notes", ""]
    for s in extra:
        if s["name"].startswith("persist"):
            startup = [
                r.get("startup_s") for r in s.get("runs", []) if r.get("startup_s") is not None
            ]
            out.append(
                f"- {s['name']}: {s.get('records')} preloaded records drained by "
                f"{s.get('replicas')} consumer(s) (`bench.pool_worker`, the VotePersister loop); "
                f"time to first count {startup} s, not in the rate."
            )
        else:
            out.append(
                f"- e2e_latency: background {s.get('rate_votes_per_s')} votes/s of single HTTP "
                f"votes; {s.get('note')}."
            )
    return [*out, ""]
