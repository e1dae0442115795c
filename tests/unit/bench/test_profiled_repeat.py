"""py-spy profiles an extra repeat of each Serve scenario that the medians leave out: the
sampling costs the sampled process CPU, so a profiled repeat is the slowest. No Ray, no py-spy:
the load generator and the profiler are fakes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, Self

import pytest

from bench.harness import measure
from bench.harness.loadgen import LoadResult
from bench.harness.runner import Bench

FAST, SLOW = 1000, 600  # votes in the window: unprofiled, profiled


class FakeProfiler:
    active = False

    def __init__(self, *_args: Any) -> None:
        self.result = {"serve_ingress_replica": {"samples": 42}}

    def __enter__(self) -> Self:
        FakeProfiler.active = True
        return self

    def __exit__(self, *_exc: object) -> None:
        FakeProfiler.active = False


def fake_load(*_args: Any, **_kwargs: Any) -> LoadResult:
    votes = SLOW if FakeProfiler.active else FAST
    return LoadResult(
        duration_s=1.0,
        window_requests=votes,
        window_votes=votes,
        accepted_votes=votes,
        accepted_requests=votes,
    )


def a_bench(tmp_path: Path) -> Bench:
    bench = Bench.__new__(Bench)  # no config file, no Kafka: only what repeat/record/ingest use
    bench.args = SimpleNamespace(profile=True, out=tmp_path)
    bench.plan = SimpleNamespace(
        warmup_s=0.0,
        duration_s=1.0,
        batch_duration_s=1.0,
        concurrency=1,
        batch_concurrency=1,
        repeats_of=lambda _name: 3,
    )
    bench.names = SimpleNamespace(run_id="t")
    bench.scenarios, bench.started, bench.expected_s = [], 0.0, 0.0
    bench.measured_pids, bench.measured_groups = {}, [1]  # as while our `serve run` serves
    bench.profiled, bench.profiling, bench.profiled_runs = set(), False, {}
    return bench


def test_the_profiled_repeat_is_extra_and_not_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(measure, "Profiler", FakeProfiler)
    monkeypatch.setattr(measure.loadgen, "run_http", fake_load)
    monkeypatch.setattr(Bench, "stack_pids", lambda _self: {})
    monkeypatch.setattr(Bench, "align_priority", lambda _self, _stack: None)  # no renice here
    bench = a_bench(tmp_path)
    name = "serve_noop_http"
    runs = bench.repeat(
        name, lambda: bench.ingest(name, protocol="http", kind="single", http=("h", 1), topic=None)
    )
    assert [run["votes_per_s"] for run in runs] == [FAST] * 3  # all three counted: unprofiled
    assert not any(run.get("profile") for run in runs)
    scenario = bench.record(name, runs)
    assert scenario["votes_per_s"] == FAST and scenario["repeats"] == 3
    assert scenario["profile"] == {"serve_ingress_replica": {"samples": 42}}
    assert scenario["profiled_run"]["votes_per_s"] == SLOW
    # Profiled once per scenario: a second call (a variant's next repeat) runs no extra one.
    calls: list[int] = []
    bench.repeat(name, lambda: calls.append(1) or {"votes_per_s": 1.0}, repeats=1)
    assert len(calls) == 1


def test_scenarios_that_are_not_profiled_run_no_extra_repeat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Bench, "stack_pids", lambda _self: {})
    monkeypatch.setattr(Bench, "align_priority", lambda _self, _stack: None)
    bench = a_bench(tmp_path)
    calls: list[int] = []
    runs = bench.repeat("system_single[haproxy]", lambda: calls.append(1) or {"votes_per_s": 1.0})
    assert len(runs) == len(calls) == 3  # its own load, never profiled: no extra repeat
