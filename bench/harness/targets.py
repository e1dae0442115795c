"""The performance targets of `make bench`, evaluated on a run's scenarios (pure: no services).

For each Serve mode measured (Serve scenarios carry a `[mode]` suffix; `make run` ships haproxy):

- ingest-only single votes >= 0.5 x the plain peer, over HTTP and over gRPC;
- the ingress replica's CPU per vote <= 1.5 x (serve_noop's replica CPU per request + the peer's
  CPU per vote), over HTTP and over gRPC;
- the whole system sustains >= 1,000 single votes/s and >= 20,000 votes/s in batches, accepted and
  persisted, and every repeat drains within 5 s after the load stops;

and once: persist (best pool size) >= 0.8 x the slower sink's raw rate and >= the batch ingest
rate; e2e_latency p99 < 1 s; zero errors and exact reconciliation everywhere. A ratio target gives
its point ratio (of medians) and its 95% bootstrap interval over the repeats (bench.harness.stats);
it is met on the point ratio.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.harness import stats

SINGLE_VS_PEER = 0.5
CPU_VS_FLOOR_PLUS_PEER = 1.5
SYSTEM_SINGLE_MIN = 1_000.0
SYSTEM_BATCH_MIN = 20_000.0
DRAIN_MAX_S = 5.0
PERSIST_VS_SINK = 0.8
E2E_P99_MAX_MS = 1000.0

Scenario = dict[str, Any]


def mode_suffixes(scenarios: list[Scenario]) -> list[str]:
    """The `[mode]` suffixes present ("" for Serve's default mode), default first."""
    found = {
        s["name"][s["name"].index("[") :] if "[" in s["name"] else ""
        for s in scenarios
        if s["name"].startswith(("serve_", "system_"))
    }
    return sorted(found, key=lambda suffix: (suffix != "", suffix))


def run_rates(scenario: Scenario | None) -> list[float]:
    """The votes/s of each repeat of a scenario (failed repeats left out)."""
    if not scenario:
        return []
    return [float(r["votes_per_s"]) for r in scenario.get("runs", []) if r.get("votes_per_s")]


def run_cpu_us_per_vote(run: dict[str, Any], part: str) -> float | None:
    """µs of CPU of one process kind per vote accepted in one repeat (warm-up included)."""
    accepted = int(run.get("accepted") or run.get("accepted_votes") or 0)
    seconds = (run.get("cpu_s") or {}).get(part)
    if not accepted or seconds is None:
        return None
    return 1e6 * seconds / accepted


def cpu_samples(scenario: Scenario | None, part: str) -> list[float]:
    if not scenario:
        return []
    values = [run_cpu_us_per_vote(r, part) for r in scenario.get("runs", [])]
    return [v for v in values if v is not None]


def _ratio_text(interval: stats.Interval) -> str:
    return f"ratio {interval.point:.2f} ({interval.label})"


class Targets:
    def __init__(self, scenarios: list[Scenario]) -> None:
        self.all = scenarios
        # A variant (bench.harness.variants: another value of an app setting, e.g.
        # serve_http_batch_ingest_no_txn)
        # is reported beside its baseline, not judged; its errors and reconciliation still count
        # (clean).
        self.scenarios = [s for s in scenarios if not s.get("variant_of")]
        self.by = {s["name"]: s for s in scenarios}
        self.results: list[dict[str, Any]] = []

    def add(
        self, target: str, met: bool, detail: str, interval: stats.Interval | None = None
    ) -> None:
        entry: dict[str, Any] = {"target": target, "met": met, "detail": detail}
        if interval is not None:
            entry["ratio"] = interval.as_dict()
        self.results.append(entry)

    def rate_ratio(self, numerator: str, denominator: str, factor: float) -> None:
        """numerator >= factor x denominator, on the medians of their repeats."""
        a, b = run_rates(self.by.get(numerator)), run_rates(self.by.get(denominator))
        if not a or not b:
            return
        interval = stats.ratio_ci(a, b)
        self.add(
            f"{numerator} >= {factor} x {denominator}",
            interval.point >= factor,
            f"{self.by[numerator]['votes_per_s']:,.0f} vs {factor} x "
            f"{self.by[denominator]['votes_per_s']:,.0f}"
            f"; {_ratio_text(interval)}",
            interval,
        )

    def replica_cpu(self, suffix: str, protocol: str) -> None:
        """Ingest-only replica CPU per vote vs 1.5 x (noop replica per request + peer per vote)."""
        ours_name = f"serve_{protocol}_single_ingest{suffix}"
        noop_name, peer_name = f"serve_noop_{protocol}{suffix}", f"plain_{protocol}_peer"
        ours = cpu_samples(self.by.get(ours_name), "serve_ingress_replica")
        noop = cpu_samples(self.by.get(noop_name), "serve_ingress_replica")
        peer = cpu_samples(self.by.get(peer_name), "peer")
        if not ours or not noop or not peer:
            return
        interval = stats.bootstrap([ours, noop, peer], lambda m: m[0] / (m[1] + m[2]))
        medians = [statistics.median(x) for x in (ours, noop, peer)]
        self.add(
            f"{ours_name}: replica CPU/vote <= {CPU_VS_FLOOR_PLUS_PEER} x ({noop_name} replica "
            f"CPU/request + {peer_name} CPU/vote)",
            interval.point <= CPU_VS_FLOOR_PLUS_PEER,
            f"{medians[0]:,.0f} µs vs {CPU_VS_FLOOR_PLUS_PEER} x ({medians[1]:,.0f} + "
            f"{medians[2]:,.0f})"
            f" = {CPU_VS_FLOOR_PLUS_PEER * (medians[1] + medians[2]):,.0f} µs; "
            f"{_ratio_text(interval)}",
            interval,
        )

    def system(self, name: str, minimum: float) -> None:
        scenario = self.by.get(name)
        if not scenario or scenario.get("skipped"):
            return
        runs = [r for r in scenario.get("runs", []) if r.get("votes_per_s") is not None]
        drains = [r.get("drain_s") for r in runs]
        worst_drain = max((d for d in drains if d is not None), default=None)
        sustained = scenario.get("votes_per_s")
        drained = worst_drain is not None and worst_drain <= DRAIN_MAX_S and None not in drains
        met = sustained is not None and sustained >= minimum and drained
        self.add(
            f"{name} >= {minimum:,.0f} votes/s accepted and persisted, drained within "
            f"{DRAIN_MAX_S:.0f} s",
            bool(met),
            f"{_num(sustained)} votes/s sustained (accepted "
            f"{_num(scenario.get('accepted_per_s'))}, "
            f"persisted {_num(scenario.get('persisted_per_s'))}); lag at the end "
            f"{_num(scenario.get('lag_at_end'))} votes; drain {_num(worst_drain, 1)} s (worst "
            "repeat)",
        )

    def persist(self) -> None:
        # The baseline write concern's pool sizes only (bench.run --persist-write-concerns).
        pools = [
            s
            for s in self.scenarios
            if s["name"].startswith("persist_x")
            and s.get("votes_per_s")
            and s.get("write_concern") == s.get("write_concern_baseline")
        ]
        if not pools:
            return
        best = max(pools, key=lambda s: s["votes_per_s"])
        sinks = [
            self.by[n]
            for n in ("ferretdb_raw", "redis_raw")
            if (self.by.get(n) or {}).get("votes_per_s")
        ]
        if sinks:
            slower = min(sinks, key=lambda s: s["votes_per_s"])
            interval = stats.ratio_ci(run_rates(best), run_rates(slower))
            self.add(
                f"persist (best pool size) >= {PERSIST_VS_SINK} x the slower sink's raw rate",
                interval.point >= PERSIST_VS_SINK,
                f"{best['name']} {best['votes_per_s']:,.0f} vs {PERSIST_VS_SINK} x "
                f"{slower['name']} "
                f"{slower['votes_per_s']:,.0f}; {_ratio_text(interval)}",
                interval,
            )
        batches = [
            s
            for s in self.scenarios
            if s.get("votes_per_s")
            and s["name"].startswith(("serve_http_batch_ingest", "serve_grpc_batch_ingest"))
        ]
        if batches:
            fastest = max(batches, key=lambda s: s["votes_per_s"])
            interval = stats.ratio_ci(run_rates(best), run_rates(fastest))
            self.add(
                "persist (best pool size) >= the batch ingest rate",
                interval.point >= 1.0,
                f"{best['name']} {best['votes_per_s']:,.0f} vs {fastest['name']} "
                f"{fastest['votes_per_s']:,.0f}; {_ratio_text(interval)}",
                interval,
            )

    def e2e(self) -> None:
        e2e = self.by.get("e2e_latency")
        if e2e and e2e.get("p99_ms") is not None:
            self.add(
                "e2e_latency p99 < 1 s",
                e2e["p99_ms"] < E2E_P99_MAX_MS,
                f"p99 {e2e['p99_ms']:,.0f} ms at {e2e.get('rate_votes_per_s')} votes/s",
            )

    def clean(self) -> None:
        bad = [
            s["name"]
            for s in self.all
            if not s.get("skipped") and (s.get("errors") or not s.get("reconciled"))
        ]
        self.add(
            "zero errors, exact reconciliation in every scenario",
            not bad,
            "all clean" if not bad else f"not clean: {', '.join(bad)}",
        )


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def evaluate_targets(scenarios: list[Scenario]) -> list[dict[str, Any]]:
    targets = Targets(scenarios)
    for suffix in mode_suffixes(scenarios):
        for protocol in ("http", "grpc"):
            targets.rate_ratio(
                f"serve_{protocol}_single_ingest{suffix}", f"plain_{protocol}_peer", SINGLE_VS_PEER
            )
        for protocol in ("http", "grpc"):
            targets.replica_cpu(suffix, protocol)
        targets.system(f"system_single{suffix}", SYSTEM_SINGLE_MIN)
        targets.system(f"system_batch{suffix}", SYSTEM_BATCH_MIN)
    targets.persist()
    targets.e2e()
    targets.clean()
    return targets.results
