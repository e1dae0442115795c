"""A scenario's repeats summed up: medians and spread, CPU per vote, a line for the log."""

from __future__ import annotations

import statistics
from typing import Any

from bench.harness.priority import merge_niceness


def failed(exc: BaseException) -> dict[str, Any]:
    """What a repeat (or a step) that raised records: no rate, one error, not reconciled."""
    return {
        "votes_per_s": None,
        "errors": 1,
        "reconciled": False,
        "failure": f"{type(exc).__name__}: {exc}",
    }


def short(result: dict[str, Any]) -> str:
    """One repeat in one log line: its rate, latencies, CPU, errors and reconciliation."""
    parts = [f"{result.get('votes_per_s')} votes/s"]
    if result.get("persisted_per_s") is not None:
        parts.append(
            f"accepted {result.get('accepted_per_s')}/s, "
            f"persisted {result.get('persisted_per_s')}/s, "
            f"lag at end {result.get('lag_at_end')}, drain {result.get('drain_s')} s"
        )
    if result.get("p99_ms") is not None:
        parts.append(f"p50 {result.get('p50_ms')} ms, p99 {result.get('p99_ms')} ms")
    if result.get("loadgen_us_per_request") is not None:
        parts.append(f"loadgen {result['loadgen_us_per_request']:.0f} µs/request")
    if share := result.get("cpu_share"):
        parts.append(f"cores {100 * sum(share.values()):.0f}% busy")
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
# loadgen_us_per_request: the load generator's own CPU per request in the window (a median).
EXTRA_STATS = (
    "accepted_per_s",
    "persisted_per_s",
    "lag_at_end",
    "drain_s",
    "requests_per_s",
    "loadgen_us_per_request",
)


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
    niceness = merge_niceness(r["niceness"] for r in runs if r.get("niceness"))
    if niceness:
        scenario["niceness"] = niceness  # by part: the values seen over the repeats
    scenario["runs"] = runs
    return scenario
