"""bench: persist under two vote log write concerns, interleaved, and their ratio in the report."""

from __future__ import annotations

from typing import Any

import pytest

from bench.harness.cli import parse_args
from bench.harness.plan import make_plan
from bench.harness.report.comparisons import variant_lines
from bench.harness.targets import evaluate_targets
from bench.harness.variants import interleaved, persist_name, write_concerns


def test_the_default_compares_the_settings_default_with_acknowledged() -> None:
    assert write_concerns("") == ["majority", "acknowledged"]
    assert write_concerns("majority") == ["majority"]
    assert write_concerns("majority, acknowledged,majority") == ["majority", "acknowledged"]


def test_an_unknown_write_concern_names_the_choices() -> None:
    with pytest.raises(
        SystemExit, match="unknown value 'fsync'; known: majority, journaled, acknowledged"
    ):
        write_concerns("majority,fsync")


def test_the_plan_carries_the_write_concerns() -> None:
    args = parse_args(["--only", "persist", "--persist-write-concerns", "majority,acknowledged"])
    plan = make_plan(args, {"applications": [{"deployments": []}]})
    assert plan.persist_write_concerns == ["majority", "acknowledged"]


def test_repeats_alternate_so_that_drift_meets_both() -> None:
    assert interleaved(["majority", "acknowledged"], 3) == [
        "majority",
        "acknowledged",
        "acknowledged",
        "majority",
        "majority",
        "acknowledged",
    ]


def test_the_baseline_keeps_the_plain_name() -> None:
    assert persist_name(1, "majority", "majority") == "persist_x1"
    assert persist_name(1, "acknowledged", "majority") == "persist_x1_acknowledged"


def scenario(name: str, concern: str, rates: list[float]) -> dict[str, Any]:
    variant = {
        "variant_setting": "mongo_write_concern",
        "variant_what": "vote log write concern",
        "variant": concern,
        "variant_baseline": "majority",
    }
    if concern != "majority":
        variant["variant_of"] = "persist_x1"
    return {
        "name": name,
        "replicas": 1,
        "write_concern": concern,
        "write_concern_baseline": "majority",
        "votes_per_s": sorted(rates)[len(rates) // 2],
        "runs": [{"votes_per_s": r, "interleaved": True} for r in rates],
    } | variant


def test_the_report_gives_the_ratio_of_the_two() -> None:
    scenarios = [
        scenario("persist_x1", "majority", [900, 950, 1000]),
        scenario("persist_x1_acknowledged", "acknowledged", [1000, 1000, 1100]),
    ]
    (line,) = variant_lines(scenarios)
    assert (
        "majority 950 vs acknowledged 1,000 votes/s, majority/acknowledged = 0.95 (95% CI" in line
    )
    assert line.endswith(
        "no clear difference (the interval contains 1). Interleaved repeats: 3 of each."
    )
    scenarios[1]["runs"] = [{"votes_per_s": r} for r in (1900, 1900, 1901)]
    (line,) = variant_lines(scenarios)
    assert "contains 1" not in line


def test_the_targets_judge_the_baseline_only() -> None:
    scenarios = [
        scenario("persist_x1", "majority", [900, 950, 1000]),
        scenario("persist_x1_acknowledged", "acknowledged", [5000, 5000, 5000]),
        {"name": "ferretdb_raw", "votes_per_s": 1000.0, "runs": [{"votes_per_s": 1000.0}]},
    ]
    (target,) = [t for t in evaluate_targets(scenarios) if "raw rate" in t["target"]]
    assert target["detail"].startswith("persist_x1 950")
