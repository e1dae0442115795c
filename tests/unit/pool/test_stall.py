"""A step of the batch processor that keeps failing turns the replica unhealthy, loudly and once."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from serve_app.domain.counting import CounterUpdate
from serve_app.metrics import PersistMetrics
from serve_app.pool.ports import Poison
from serve_app.pool.processor import BatchProcessor
from serve_app.pool.stats import PersisterStats
from tests.support.counting_model import CountingModel
from tests.unit.pool.test_processor import (
    TOPIC,
    FakeDeadLetters,
    FakeRecord,
    FakeVoteLog,
    vote_record,
)

LIMIT_S = 300.0


@dataclass
class RecordingCounter:
    incs: list[tuple[float, dict[str, str] | None]] = field(default_factory=list)

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        self.incs.append((value, tags))


@dataclass
class RefusingCounters(CountingModel):
    failures: int = 0

    def apply(self, topic: str, updates: Iterable[CounterUpdate]) -> int:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("counters refuse the batch")
        return super().apply(topic, updates)


@dataclass
class RefusingDeadLetters(FakeDeadLetters):
    failures: int = 0

    def send(self, poison: Sequence[Poison]) -> int:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the DLQ refuses the batch")
        return super().send(poison)


@dataclass
class Harness:
    """A processor whose ports fail as told, on a fake clock that each backoff wait advances."""

    failures: int
    failing_step: str
    stop_at_s: float | None = None  # the loop is stopped at the first wait past this time
    now: float = 1000.0
    seen: list[tuple[float, str | None]] = field(default_factory=list)  # (elapsed, stats.stalled)
    stalls: RecordingCounter = field(default_factory=RecordingCounter)

    def __post_init__(self) -> None:
        self.started = self.now
        metrics = PersistMetrics()
        metrics.persist_stalls = self.stalls  # type: ignore[assignment]  # a counter that records
        failures = {self.failing_step: self.failures}
        self.processor = BatchProcessor(
            TOPIC,
            FakeVoteLog(failures=failures.get("vote log", 0)),
            RefusingCounters(failures=failures.get("counters", 0)),
            RefusingDeadLetters(failures=failures.get("dead-letter", 0)),
            retryable=(ConnectionError,),
            wait=self.wait,
            stats=PersisterStats(),
            metrics=metrics,
            stall_limit_s=LIMIT_S,
            clock=lambda: self.now,
        )

    def wait(self, seconds: float) -> bool:
        self.seen.append((self.now - self.started, self.processor.stats.stalled))
        self.now += seconds + 2.0  # each attempt itself takes a while (a store's timeout)
        return self.stop_at_s is not None and self.now - self.started > self.stop_at_s

    def process(self) -> Any:
        return self.processor.process([vote_record("a", 0, 0), FakeRecord(b"{", 0, 1)])


@pytest.mark.parametrize("step", ["dead-letter", "vote log", "counters"])
def test_a_step_failing_past_the_limit_fails_the_health_check_with_an_error_line_and_a_metric(
    step: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ray.serve")
    harness = Harness(failures=10**6, failing_step=step, stop_at_s=LIMIT_S + 60)
    assert harness.process() is None  # stopped, still failing: nothing counted or committed
    before = [stalled for elapsed, stalled in harness.seen if elapsed < LIMIT_S]
    after = [stalled for elapsed, stalled in harness.seen if elapsed >= LIMIT_S]
    assert before and set(before) == {None}
    assert after and all(
        s is not None and s.startswith("failing for ") and f"last: {step}: ConnectionError" in s
        for s in after
    )
    assert harness.stalls.incs == [(1.0, {"step": step})]  # once, not once per attempt
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(f"{step} has failed for ")
    assert "Serve replaces this replica" in errors[0]
    assert harness.processor.stats.stalled is None  # the retry stopped: nothing is failing now


def test_a_step_that_succeeds_again_makes_the_replica_healthy_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="ray.serve")
    # 90 failures: ~600 s of attempts (2 s each, backoff 0.1 s doubling to 5 s), past the limit.
    harness = Harness(failures=90, failing_step="vote log")
    assert harness.process() == {(TOPIC, 0): 2}
    assert any(stalled is not None for _elapsed, stalled in harness.seen)
    assert harness.processor.stats.stalled is None and harness.processor.stats.counted == 1
    assert any(r.getMessage().startswith("vote log no longer stalled") for r in caplog.records)


def test_a_short_outage_never_reaches_the_limit() -> None:
    harness = Harness(failures=20, failing_step="counters")
    assert harness.process() == {(TOPIC, 0): 2}
    assert harness.stalls.incs == [] and {s for _e, s in harness.seen} == {None}
