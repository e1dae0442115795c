"""bench.harness.report.latest renders a run (fake data) into latest.md, latest.json and the
chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.harness.report.comparisons import comparisons
from bench.harness.report.latest import markdown, write_reports
from bench.harness.targets import evaluate_targets


def scenario(
    name: str,
    rates: list[float],
    kind: str = "single",
    cpu: dict[str, float] | None = None,
    **run_extra: Any,
) -> dict[str, Any]:
    runs = [
        {
            "votes_per_s": r,
            "accepted_votes": 20_000,
            "cpu_s": dict(cpu or {}),
            "reconciled": True,
            "errors": 0,
        }
        | run_extra
        for r in rates
    ]
    ordered = sorted(rates)
    median = ordered[len(ordered) // 2]
    return {
        "name": name,
        "kind": kind,
        "votes_per_s": median,
        "votes_per_s_min": ordered[0],
        "votes_per_s_max": ordered[-1],
        "spread_pct": 1.0,
        "repeats": len(rates),
        "errors": 0,
        "reconciled": True,
        "runs": runs,
        "cpu_us_per_vote": {k: 1e6 * v / 20_000 for k, v in (cpu or {}).items()},
    }


def fake_run() -> dict[str, Any]:
    h = "[haproxy]"
    scenarios = [
        scenario("plain_http_peer", [1500, 1510, 1490, 1505, 1495], cpu={"peer": 10.0}),
        scenario("plain_grpc_peer", [1200, 1210, 1190, 1205, 1195], cpu={"peer": 12.0}),
        {
            "name": "seed_rust_http",
            "skipped": "cargo is not installed",
            "votes_per_s": None,
            "errors": 0,
            "reconciled": True,
            "repeats": 0,
            "runs": [],
        },
        scenario("seed_go_grpc", [3000, 3100, 2900, 3050, 2950], cpu={"peer": 5.0}),
        scenario(
            f"serve_noop_http{h}",
            [2500, 2600, 2400, 2550, 2450],
            cpu={"serve_ingress_replica": 6.0},
        ),
        scenario(
            f"serve_noop_grpc{h}",
            [2000, 2050, 1950, 2020, 1980],
            cpu={"serve_ingress_replica": 7.0},
        ),
        scenario(
            f"serve_http_single_ingest{h}",
            [800, 900, 850, 700, 1000],
            cpu={"serve_ingress_replica": 20.0},
        ),
        scenario(
            f"serve_grpc_single_ingest{h}",
            [820, 880, 860, 720, 950],
            cpu={"serve_ingress_replica": 22.0},
        ),
        scenario(f"serve_http_batch_ingest{h}", [30_000, 31_000, 29_000], kind="batch"),
        scenario(f"serve_http_single{h}", [600, 610, 590], cpu={"serve_pool_replica": 3.0}),
        scenario(
            f"system_single{h}",
            [1100, 1150, 1120],
            protocol="http",
            load="lag-bounded",
            drain_s=1.5,
            replicas_at_end={"serve_pool_replica": 2},
        )
        | {"accepted_per_s": 1130.0, "persisted_per_s": 1120.0, "lag_at_end": 300},
    ]
    for s in scenarios:
        if s["name"].endswith(h):
            s["mode"] = "haproxy"
    return {
        "scenarios": scenarios,
        "targets": evaluate_targets(scenarios),
        "machine": {
            "when": "2026-12-01T10:00:00+0000",
            "cpus": 2,
            "cpu_model": "test",
            "ray": "2.60.0",
            "python": "3.11.7",
            "loadavg_before": [0.5, 0, 0],
            "loadavg_after": [1.5, 0, 0],
        },
        "config": {
            "plan": {
                "warmup_s": 3.0,
                "duration_s": 8.0,
                "batch_duration_s": 5.0,
                "repeats": 5,
                "context_repeats": 3,
                "concurrency": 32,
                "batch_concurrency": 4,
                "system_warmup_s": 8.0,
                "system_duration_s": 20.0,
            },
            "serve_modes": ["haproxy"],
            "system_load": "lag-bounded",
            "took_s": 1700,
            "expected_s": 1770,
        },
    }


def test_the_report_shows_the_new_sections_with_intervals() -> None:
    text = markdown(fake_run())
    assert "| seed_rust_http | skipped: cargo is not installed |" in text
    assert "## Ingest only or the whole system" in text
    # HTTP single: floor 2,500 req/s, ingest only 850, whole 600 (0.71), sustained 1,120.
    assert "| HTTP single | 2,500 | 850 | 600 | 0.71 | 1,120 |" in text
    assert "| system_single[haproxy] | http | lag-bounded | 1,120 | 1,130 | 1,120 | 300 |" in text
    assert (
        "- single votes through Serve, ingest only (haproxy mode): HTTP 850 vs gRPC 860 votes/s: "
        "no clear difference (95% CI" in text
    )
    assert (
        "- single votes, plain Python servers without Ray: HTTP 1,500 vs gRPC 1,200 votes/s: HTTP "
        "is 1.25x "
        "faster (95% CI" in text
    )
    assert "- seed_rust_http: skipped: cargo is not installed" in text
    assert (
        "- seed_go_grpc or plain_grpc_peer: seed_go_grpc 3,000 vs plain_grpc_peer 1,200 votes/s: "
        "seed_go_grpc is 2.50x faster" in text
    )
    assert "| serve_http_single_ingest[haproxy] >= 0.5 x plain_http_peer | yes |" in text
    assert "The run took 28 min (expected ~30)." in text


def test_comparisons_are_kept_in_the_json_and_the_chart_is_drawn(tmp_path: Path) -> None:
    data = fake_run()
    write_reports(data, tmp_path)
    saved = json.loads((tmp_path / "latest.json").read_text())
    sections = {c["section"] for c in saved["comparisons"]}
    assert sections == {"http_or_grpc", "seed"}
    assert (tmp_path / "latest.png").stat().st_size > 10_000
    assert (tmp_path / "latest.md").read_text().startswith("# votes benchmark: latest results")


def test_no_comparison_without_both_sides() -> None:
    only_http = [scenario("plain_http_peer", [1500, 1510])]
    assert comparisons(only_http) == []


def like_for_like_data(**config: Any) -> dict[str, Any]:
    peer = scenario("plain_http_peer", [1500, 1510]) | {
        "event_loop": "asyncio",
        "niceness": {"kafka": [0], "peer": [0], "loadgen_and_bench": [0]},
        "loadgen_us_per_request": 90.0,
    }
    uvloop = scenario("plain_http_peer_uvloop", [1700]) | {
        "event_loop": "uvloop",
        "niceness": {"kafka": [0], "peer": [0]},
    }
    return {"scenarios": [peer, uvloop], "config": {"plan": {"profiled": True}} | config}


def test_the_header_says_which_like_for_like_points_hold() -> None:
    from bench.harness.report.latest import like_for_like

    text = like_for_like(like_for_like_data())
    assert text.startswith("Like for like: same event loop (asyncio)")
    assert "one priority (nice 0)" in text
    assert "profiled repeat not counted" in text
    assert "load generator CPU shown" in text
    assert "Not like for like" not in text


def test_the_header_says_what_is_not_like_for_like_and_why() -> None:
    from bench.harness.report.latest import like_for_like

    data = like_for_like_data(niceness_refused=["nice 15 (setpriority: Permission denied)"])
    data["scenarios"][0]["niceness"]["kafka"] = [15]
    data["scenarios"][0]["event_loop"] = "uvloop"
    text = like_for_like(data)
    assert "Not like for like: event loop: plain_http_peer uvloop" in text
    assert "kafka 0/15" in text and "Permission denied" in text
    assert "one priority" not in text
