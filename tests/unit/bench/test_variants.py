"""bench.harness.variants: a scenario under two values of an app setting (--batch-transactions,
--persist-write-concerns), their repeats interleaved in one run, the ratio in the report, the
targets judging the baseline only."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.harness.cli import parse_args
from bench.harness.plan import estimate_s, group_of, make_plan, order_scenarios, selected
from bench.harness.report.comparisons import variant_lines
from bench.harness.report.latest import markdown
from bench.harness.results import merged
from bench.harness.runner import Bench
from bench.harness.targets import evaluate_targets
from bench.harness.variants import BATCH_TRANSACTIONS, batch_transactions, interleaved
from bench.scenarios.serve_ingest import serve_ingest_only
from tests.unit.bench.test_report import fake_run

CONFIG = {"applications": [{"deployments": []}]}
BASE, VARIANT = "serve_http_batch_ingest[haproxy]", "serve_http_batch_ingest_no_txn[haproxy]"


def test_batch_transactions_default_to_on_against_off() -> None:
    assert batch_transactions("", []) == ["on", "off"]
    assert batch_transactions(" off, on,off", []) == ["off", "on"]
    assert batch_transactions("on", []) == ["on"]
    assert make_plan(parse_args(["--batch-transactions", "off,on"]), CONFIG).batch_transactions == [
        "off",
        "on",
    ]
    assert make_plan(parse_args([]), CONFIG).persist_write_concerns == ["majority", "acknowledged"]


def test_bad_batch_transactions_name_the_problem() -> None:
    with pytest.raises(
        SystemExit, match="--batch-transactions: unknown value 'maybe'; known: on, off"
    ):
        batch_transactions("on,maybe", [])
    with pytest.raises(
        SystemExit, match="--app-arg kafka_batch_transactions=... and --batch-transactions"
    ):
        make_plan(
            parse_args(
                ["--app-arg", "kafka_batch_transactions=false", "--batch-transactions", "on"]
            ),
            CONFIG,
        )


def test_an_app_arg_for_the_setting_measures_its_value_alone() -> None:
    assert batch_transactions("", ["kafka_linger_ms=5", "kafka_batch_transactions=false"]) == [
        "off"
    ]
    assert batch_transactions("", ["kafka_batch_transactions=true"]) == ["on"]


def test_the_variant_is_named_after_its_baseline_and_belongs_to_its_group() -> None:
    assert (
        BATCH_TRANSACTIONS.name("serve_http_batch_ingest", "on", "on") == "serve_http_batch_ingest"
    )
    assert (
        BATCH_TRANSACTIONS.name("serve_http_batch_ingest", "off", "on")
        == "serve_http_batch_ingest_no_txn"
    )
    assert group_of(VARIANT) == "ingest"
    assert selected(parse_args(["--only", VARIANT])) == ["serve_http_batch_ingest"]
    names = [
        s["name"]
        for s in order_scenarios(
            [{"name": VARIANT}, {"name": "serve_grpc_batch_ingest[haproxy]"}, {"name": BASE}]
        )
    ]
    assert names == [BASE, VARIANT, "serve_grpc_batch_ingest[haproxy]"]


def test_fewer_variant_repeats_interleave_first_then_the_baseline_alone() -> None:
    assert interleaved(["on", "off"], 5, 3) == ["on", "off", "off", "on", "on", "off", "on", "on"]


def test_the_variants_add_under_four_minutes_to_the_estimate() -> None:
    args = parse_args([])
    alone = parse_args(["--batch-transactions", "on", "--persist-write-concerns", "majority"])
    added = estimate_s(make_plan(args, CONFIG), selected(args), ["haproxy"]) - estimate_s(
        make_plan(alone, CONFIG), selected(alone), ["haproxy"]
    )
    assert 60 < added < 4 * 60


class FakeInstance:
    def __init__(self, pid: int, http_port: int) -> None:
        self.proc = type("Proc", (), {"pid": pid})()
        self.http_port = http_port
        self.grpc_target = f"127.0.0.1:{http_port + 1000}"
        self.env_applied: dict[str, str] = {}


def fake_bench(
    argv: list[str], fail_beside: bool = False
) -> tuple[Bench, list[dict[str, Any]], list[tuple[str, int]]]:
    """A Bench whose `serve run`s and load are fakes: what it starts, and what it measures where."""
    bench = Bench(parse_args(["--no-profile", "--only", "serve_http_batch_ingest", *argv]))
    started: list[dict[str, Any]] = []
    measured: list[tuple[str, int]] = []

    @contextlib.contextmanager
    def serving(
        app: str,
        mode: str,
        import_path: str | None,
        settings: dict[str, Any] | None = None,
        beside: bool = False,
    ) -> Iterator[tuple[FakeInstance, str, float]]:
        started.append({"app": app, "settings": settings, "beside": beside})
        if beside and fail_beside:
            raise RuntimeError("serve[haproxy] /healthz: the process exited")
        yield FakeInstance(100 + len(started), 8000 + len(started)), f"topic-{app}", 1.0

    def ingest(name: str, **kw: Any) -> dict[str, Any]:
        measured.append((name, kw["http"][1]))
        return {"votes_per_s": 1000.0, "errors": 0, "reconciled": True}

    bench.serving = serving  # type: ignore[method-assign]
    bench.ingest = ingest  # type: ignore[method-assign]
    bench.stack_pids = dict  # type: ignore[method-assign]
    return bench, started, measured


def test_the_batch_variant_runs_on_a_second_app_its_repeats_interleaved(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench, started, measured = fake_bench(["--repeats", "5", "--context-repeats", "3"])
    serve_ingest_only(bench, ["serve_http_batch_ingest"], "haproxy")
    numbered = [
        line.split("] ", 1)[1].split(":")[0]
        for line in capsys.readouterr().out.splitlines()
        if " #" in line
    ]
    assert numbered == [
        f"{BASE} #1/5",
        f"{VARIANT} #1/3",
        f"{VARIANT} #2/3",
        f"{BASE} #2/5",
        f"{BASE} #3/5",
        f"{VARIANT} #3/3",
        f"{BASE} #4/5",
        f"{BASE} #5/5",
    ]
    assert started == [
        {"app": "ingest", "settings": {"kafka_batch_transactions": True}, "beside": False},
        {"app": "ingest-no_txn", "settings": {"kafka_batch_transactions": False}, "beside": True},
    ]
    assert measured == [
        (BASE, 8001),
        (VARIANT, 8002),
        (VARIANT, 8002),
        (BASE, 8001),
        (BASE, 8001),
        (VARIANT, 8002),
        (BASE, 8001),
        (BASE, 8001),
    ]
    base, variant = bench.scenarios
    assert (base["name"], base["repeats"], variant["name"], variant["repeats"]) == (
        BASE,
        5,
        VARIANT,
        3,
    )
    assert [r["interleaved"] for r in base["runs"]] == [True, True, True, False, False]
    assert variant["variant_of"] == BASE and "variant_of" not in base
    assert bench.measured_groups == [101]  # back to the first app for the scenarios after it


def test_one_value_measures_the_baseline_alone_on_one_app() -> None:
    bench, started, measured = fake_bench(["--repeats", "3", "--batch-transactions", "off"])
    serve_ingest_only(bench, ["serve_http_batch_ingest"], "haproxy")
    assert started == [
        {"app": "ingest", "settings": {"kafka_batch_transactions": False}, "beside": False}
    ]
    assert measured == [(BASE, 8001)] * 3
    (only,) = bench.scenarios
    assert only["name"] == BASE and "variant_of" not in only


def scenario(
    name: str, rates: list[float], interleaved: list[bool] | None = None, **extra: Any
) -> dict[str, Any]:
    runs = [{"votes_per_s": r, "reconciled": True, "errors": 0} for r in rates]
    for run, flag in zip(runs, interleaved or [], strict=False):
        run["interleaved"] = flag
    return {
        "name": name,
        "votes_per_s": sorted(rates)[len(rates) // 2],
        "repeats": len(rates),
        "errors": 0,
        "reconciled": True,
        "kind": "batch",
        "runs": runs,
    } | extra


def batch_pair(variant_rates: list[float]) -> list[dict[str, Any]]:
    info = {
        "variant_setting": "kafka_batch_transactions",
        "variant_flag": "--batch-transactions",
        "variant_what": "Kafka transaction per batch",
        "variant_baseline": "on",
    }
    # The two repeats not interleaved are far off: the ratio must leave them out.
    return [
        scenario(
            BASE,
            [20_000, 21_000, 22_000, 90_000, 90_000],
            [True, True, True, False, False],
            **info,
            variant="on",
        ),
        scenario(VARIANT, variant_rates, **info, variant="off", variant_of=BASE),
    ]


def test_the_report_gives_the_ratio_over_the_interleaved_repeats() -> None:
    (line,) = variant_lines(batch_pair([26_000, 25_000, 27_000]))
    assert line.startswith(
        f"- Kafka transaction per batch (`kafka_batch_transactions`), {BASE} vs {VARIANT}: "
        "on 21,000 vs off 26,000 votes/s, on/off = 0.81 (95% CI "
    )
    assert "no clear difference" not in line
    assert line.endswith(
        "Interleaved repeats: 3 of each; the baseline's other 2 repeats, not interleaved, "
        "are left out of the ratio."
    )
    (line,) = variant_lines(batch_pair([19_000, 21_000, 23_000]))
    assert "on/off = 1.00" in line and "no clear difference (the interval contains 1)" in line
    data = fake_run()
    data["scenarios"] = [s for s in data["scenarios"] if s["name"] != BASE] + batch_pair(
        [26_000, 25_000, 27_000]
    )
    text = markdown(data)
    assert "## What a setting costs: variants, interleaved" in text
    assert "on/off = 0.81 (95% CI " in text


def test_the_targets_judge_the_baseline_and_still_see_a_variants_errors() -> None:
    scenarios = [
        *batch_pair([900_000, 900_000, 900_000]),
        scenario("persist_x2", [25_000, 25_000, 25_000], replicas=2),
    ]
    (target,) = [t for t in evaluate_targets(scenarios) if "batch ingest rate" in t["target"]]
    assert f"vs {BASE} 22,000" in target["detail"]
    scenarios[1]["errors"] = 2
    (clean,) = [t for t in evaluate_targets(scenarios) if t["target"].startswith("zero errors")]
    assert not clean["met"] and VARIANT in clean["detail"]


def test_a_variant_app_that_does_not_start_leaves_the_baseline_measured() -> None:
    bench, _started, measured = fake_bench(["--repeats", "3"], fail_beside=True)
    serve_ingest_only(bench, ["serve_http_batch_ingest"], "haproxy")
    assert measured == [(BASE, 8001)] * 3
    failed, base = bench.scenarios
    assert failed["name"] == f"{VARIANT} (failed)" and "the process exited" in failed["failure"]
    assert base["name"] == BASE and base["repeats"] == 3 and "variant_of" not in base


def test_merge_drops_a_variants_old_failure_once_its_group_ran_again(tmp_path: Path) -> None:
    previous = {
        "scenarios": [{"name": f"{VARIANT} (failed)", "votes_per_s": None}],
        "machine": {"when": "earlier"},
        "config": {"plan": {}, "serve_modes": ["haproxy"]},
    }
    (tmp_path / "latest.json").write_text(json.dumps(previous))
    bench = Bench(parse_args(["--merge", "--no-profile", "--out", str(tmp_path)]))
    bench.scenarios = [{"name": BASE, "votes_per_s": 20.0}, {"name": VARIANT, "votes_per_s": 25.0}]
    assert [s["name"] for s in merged(bench, {}, {})] == [BASE, VARIANT]
