"""bench.harness.targets: issue 16's targets from a run's scenarios (fake data, no services)."""

from __future__ import annotations

from typing import Any

from bench.harness.targets import evaluate_targets, mode_suffixes


def scenario(
    name: str,
    rates: list[float],
    cpu: dict[str, float] | None = None,
    accepted: int = 10_000,
    **extra: Any,
) -> dict[str, Any]:
    """A scenario as bench.run records it: per-repeat rates and CPU seconds per process."""
    runs = [
        {
            "votes_per_s": r,
            "accepted_votes": accepted,
            "cpu_s": dict(cpu or {}),
            "reconciled": True,
            "errors": 0,
        }
        | extra
        for r in rates
    ]
    ordered = sorted(rates)
    return {
        "name": name,
        "votes_per_s": ordered[len(ordered) // 2],
        "runs": runs,
        "errors": 0,
        "reconciled": True,
        "repeats": len(rates),
    }


def by_target(targets: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["target"]: t for t in targets}


def test_ingest_only_single_against_the_plain_peer_with_an_interval() -> None:
    targets = by_target(
        evaluate_targets(
            [
                scenario("plain_http_peer", [1000, 1010, 990, 1005, 995]),
                scenario("serve_http_single_ingest[haproxy]", [600, 610, 590, 605, 595]),
                scenario("plain_grpc_peer", [1000, 1010, 990, 1005, 995]),
                scenario("serve_grpc_single_ingest[haproxy]", [400, 410, 390, 405, 395]),
            ]
        )
    )
    http = targets["serve_http_single_ingest[haproxy] >= 0.5 x plain_http_peer"]
    assert http["met"] and http["ratio"]["point"] == 0.6
    assert http["ratio"]["low"] < 0.6 < http["ratio"]["high"] and "95% CI" in http["detail"]
    assert not targets["serve_grpc_single_ingest[haproxy] >= 0.5 x plain_grpc_peer"]["met"]


def test_replica_cpu_against_the_floor_plus_the_peer() -> None:
    # 10,000 votes a repeat: 3 s of replica CPU = 300 µs/vote; floor 100 + peer 150 -> limit 375.
    targets = evaluate_targets(
        [
            scenario(
                "serve_http_single_ingest[haproxy]", [500] * 3, {"serve_ingress_replica": 3.0}
            ),
            scenario("serve_noop_http[haproxy]", [2000] * 3, {"serve_ingress_replica": 1.0}),
            scenario("plain_http_peer", [1000] * 3, {"peer": 1.5}),
        ]
    )
    cpu = next(
        t
        for t in targets
        if t["target"].startswith("serve_http_single_ingest[haproxy]: replica CPU")
    )
    assert cpu["met"] and cpu["ratio"]["point"] == 1.2
    assert "300 µs vs 1.5 x (100 + 150) = 375 µs" in cpu["detail"]


def test_system_needs_the_rate_and_a_drain_within_5_s_in_every_repeat() -> None:
    fast = scenario("system_single[haproxy]", [1200, 1300, 1250], drain_s=1.0)
    slow_drain = scenario("system_batch[haproxy]", [25_000, 26_000, 24_000])
    for run, drain in zip(slow_drain["runs"], (1.0, 7.5, 2.0), strict=True):
        run["drain_s"] = drain
    targets = evaluate_targets([fast, slow_drain])
    single = next(t for t in targets if t["target"].startswith("system_single[haproxy] >= 1,000"))
    batch = next(t for t in targets if t["target"].startswith("system_batch[haproxy] >= 20,000"))
    assert single["met"] and not batch["met"]
    assert "drain 7.5 s (worst repeat)" in batch["detail"]


def test_persist_against_the_slower_sink_and_the_batch_ingest_rate() -> None:
    targets = by_target(
        evaluate_targets(
            [
                scenario("ferretdb_raw", [7000, 7500, 8000]),
                scenario("redis_raw", [10_000, 10_500, 11_000]),
                scenario("persist_x1", [4000, 4100, 4200]),
                scenario("persist_x2", [6500, 6600, 6700]),
                scenario("serve_http_batch_ingest[haproxy]", [9000, 9100, 9200]),
                scenario("serve_grpc_batch_ingest[haproxy]", [5000, 5100, 5200]),
            ]
        )
    )
    sink = targets["persist (best pool size) >= 0.8 x the slower sink's raw rate"]
    assert sink["met"] and "persist_x2 6,600 vs 0.8 x ferretdb_raw 7,500" in sink["detail"]
    ingest = targets["persist (best pool size) >= the batch ingest rate"]
    assert not ingest["met"] and "serve_http_batch_ingest[haproxy] 9,100" in ingest["detail"]


def test_skipped_scenarios_do_not_count_as_unclean() -> None:
    skipped = {
        "name": "seed_rust_http",
        "skipped": "cargo not found",
        "errors": 0,
        "reconciled": True,
        "runs": [],
    }
    broken = scenario("plain_http_peer", [1000])
    broken["reconciled"] = False
    clean = by_target(evaluate_targets([skipped]))[
        "zero errors, exact reconciliation in every scenario"
    ]
    assert clean["met"]
    dirty = by_target(evaluate_targets([skipped, broken]))[
        "zero errors, exact reconciliation in every scenario"
    ]
    assert not dirty["met"] and dirty["detail"] == "not clean: plain_http_peer"


def test_mode_suffixes_default_first() -> None:
    names = [
        "serve_noop_http[haproxy]",
        "serve_http_single",
        "system_batch[throughput]",
        "plain_http_peer",
    ]
    assert mode_suffixes([{"name": n} for n in names]) == ["", "[haproxy]", "[throughput]"]
