"""`make bench`'s plan and bookkeeping (bench/harness: cli, plan, results, summary, serving):
scenario selection, the plan, the duration estimate, the order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.harness.cli import parse_args
from bench.harness.env import ROOT
from bench.harness.plan import (
    GROUPS,
    duration_text,
    estimate_s,
    group_of,
    make_plan,
    order_scenarios,
    selected,
    serve_instances,
    serve_modes,
)
from bench.harness.results import merged
from bench.harness.runner import Bench
from bench.harness.serving import own_ports, serve_env
from bench.harness.summary import summarize_runs

CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())


def test_groups_and_names_select_scenarios_in_run_order() -> None:
    assert selected(parse_args(["--only", "noop,system_batch"])) == [
        "serve_noop_http",
        "serve_noop_grpc",
        "system_batch",
    ]
    # A name as the report shows it (with its mode) selects the scenario.
    assert selected(parse_args(["--only", "serve_http_single_ingest[haproxy]"])) == [
        "serve_http_single_ingest"
    ]
    everything = selected(parse_args([]))
    assert "seed_go_http_grpc" in everything and "persist" in everything
    assert "serve_noop_http" not in selected(parse_args(["--skip", "noop"]))


def test_an_unknown_name_is_refused_with_the_known_ones() -> None:
    with pytest.raises(SystemExit, match="unknown scenario or group 'serve_nope'"):
        selected(parse_args(["--only", "serve_nope"]))
    with pytest.raises(SystemExit, match="unknown serve mode 'fast'"):
        serve_modes("haproxy,fast")


def test_haproxy_is_the_default_mode_and_two_still_work() -> None:
    assert serve_modes(parse_args([]).serve_modes) == ["haproxy"]
    assert serve_modes("default, haproxy") == ["default", "haproxy"]


def test_compared_groups_repeat_five_times_the_others_three() -> None:
    plan = make_plan(parse_args([]), CONFIG)
    assert plan.repeats_of("plain_http_peer") == 5
    assert plan.repeats_of("serve_noop_grpc[haproxy]") == 5
    assert plan.repeats_of("seed_go_grpc") == 5
    assert plan.repeats_of("system_single[haproxy]") == 3
    assert plan.repeats_of("persist_x2") == 3
    quick = make_plan(parse_args(["--quick"]), CONFIG)
    assert quick.repeats == quick.context_repeats == 1
    with pytest.raises(SystemExit, match="--repeats must be at least 1"):
        make_plan(parse_args(["--repeats", "0"]), CONFIG)


def test_a_full_run_is_expected_under_42_minutes_and_quick_under_12() -> None:
    args = parse_args([])
    full = estimate_s(make_plan(args, CONFIG), selected(args), ["haproxy"])
    assert (
        15 * 60 < full < 42 * 60
    )  # the variants, the uvloop peers and the profiled Serve repeats included
    quick_args = parse_args(["--quick"])
    quick = estimate_s(make_plan(quick_args, CONFIG), selected(quick_args), ["haproxy"])
    assert quick < 12 * 60  # with the uvloop peers and the profiled Serve repeats
    # --profile adds one uncounted repeat to each Serve scenario.
    unprofiled = parse_args(["--no-profile"])
    assert estimate_s(make_plan(unprofiled, CONFIG), selected(unprofiled), ["haproxy"]) < full
    # A second mode adds its four `serve run`s and its Serve scenarios.
    assert (
        estimate_s(make_plan(args, CONFIG), selected(args), ["default", "haproxy"]) > full + 4 * 60
    )


def test_serve_instances_follow_the_groups() -> None:
    assert serve_instances(["serve_noop_http", "e2e_latency"]) == ["noop", "system"]
    # The sustained runs get an app of their own: the closed-loop batches leave the pool scaled out.
    assert serve_instances(["serve_http_batch", "system_single"]) == ["whole", "system"]
    assert serve_instances(GROUPS["ingest"]) == ["ingest"]
    assert serve_instances(["plain_http_peer"]) == []


def test_group_of_names_with_modes() -> None:
    assert group_of("system_batch[haproxy]") == "system"
    assert group_of("persist_x2") == "persist"
    assert group_of("serve_http_batch") == "serve"
    assert group_of("something else") == ""


def test_merged_scenarios_keep_the_run_order() -> None:
    names = [
        "persist_x2",
        "system_single[haproxy]",
        "serve_noop_http[haproxy]",
        "kafka_producer_raw",
        "persist_x1",
        "serve_http_single_ingest[haproxy]",
        "seed_go_grpc",
        "plain_http_peer",
    ]
    ordered = [s["name"] for s in order_scenarios([{"name": n} for n in names])]
    assert ordered == [
        "kafka_producer_raw",
        "plain_http_peer",
        "seed_go_grpc",
        "serve_noop_http[haproxy]",
        "serve_http_single_ingest[haproxy]",
        "system_single[haproxy]",
        "persist_x1",
        "persist_x2",
    ]


def test_summaries_take_medians_and_cpu_per_vote() -> None:
    runs = [
        {
            "votes_per_s": rate,
            "accepted_votes": 1000,
            "errors": 0,
            "reconciled": True,
            "cpu_s": {"peer": 0.5},
            "drain_s": drain,
            "persisted_per_s": rate,
        }
        for rate, drain in ((100.0, 1.0), (300.0, 3.0), (200.0, 2.0))
    ]
    summary = summarize_runs("system_single[haproxy]", runs)
    assert summary["votes_per_s"] == 200.0 and summary["spread_pct"] == 100.0
    assert (summary["drain_s"], summary["drain_s_max"]) == (2.0, 3.0)
    assert summary["cpu_us_per_vote"] == {"peer": 500.0}
    assert summary["reconciled"] and summary["repeats"] == 3


def test_merge_replaces_namesakes_and_stale_failures(tmp_path: Path) -> None:
    previous = {
        "scenarios": [
            {"name": "plain_http_peer", "votes_per_s": 1.0},
            {"name": "serve_noop_http[haproxy]", "votes_per_s": 2.0},
            {"name": "noop[haproxy] (failed)", "votes_per_s": None},
            {"name": "persist_x1", "votes_per_s": 3.0},
        ],
        "machine": {"when": "earlier"},
        "config": {"plan": {"repeats": 3}, "serve_modes": ["haproxy"]},
    }
    (tmp_path / "latest.json").write_text(json.dumps(previous))
    bench = Bench(parse_args(["--merge", "--no-profile", "--out", str(tmp_path)]))
    bench.scenarios = [{"name": "serve_noop_http[haproxy]", "votes_per_s": 20.0}]
    config: dict[str, Any] = {}
    machine: dict[str, Any] = {}
    result = merged(bench, config, machine)
    assert [(s["name"], s["votes_per_s"]) for s in result] == [
        ("plain_http_peer", 1.0),
        ("serve_noop_http[haproxy]", 20.0),
        ("persist_x1", 3.0),
    ]
    assert config["merged_with"]["kept"] == ["plain_http_peer", "persist_x1"]
    assert machine["merged_with_run_of"] == "earlier"


def test_durations_read_in_seconds_then_minutes() -> None:
    assert duration_text(45) == "45 s"
    assert duration_text(1800) == "30.0 min"


def test_serve_runs_with_make_runs_environment_and_own_fallback_ports() -> None:
    env = serve_env("haproxy", (20004, 20005))
    assert (
        env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
        and env["RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE"] == "1"
    )
    assert (
        env["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"],
        env["RAY_SERVE_FALLBACK_PROXY_GRPC_PORT"],
    ) == ("20004", "20005")
    assert set(serve_env("default", (1, 2))) == {
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT",
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT",
    }
    assert own_ports(parse_args(["--http-port", "20000", "--grpc-port", "20001"])) == (
        20000,
        20001,
        20004,
        20005,
    )
    with pytest.raises(SystemExit, match="must be four ports"):
        own_ports(parse_args(["--http-port", "20000", "--fallback-ports", "20000", "20009"]))
