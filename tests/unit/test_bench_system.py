"""bench.system: the lag-bounded load's decisions and the window interpolation (no services)."""

from __future__ import annotations

import pytest

from bench.loadgen import Pacer
from bench.system import LagBound, _at


def bound() -> LagBound:
    return LagBound(Pacer(1000.0), min_rate=20.0, max_lag_s=2.0, min_lag=1000.0)


def test_a_small_lag_and_a_pacer_limited_load_raise_the_rate() -> None:
    assert bound().decide(rate=1000.0, lag=200.0, sent_rate=990.0, persisted_rate=1000.0) == pytest.approx(1250.0)


def test_a_lag_past_two_seconds_of_the_pool_cuts_to_under_what_it_persists() -> None:
    # 2 s x 800/s = 1,600 allowed; 5,000 behind: offer 90% of the 800/s the pool persists...
    assert bound().decide(rate=1000.0, lag=5000.0, sent_rate=1000.0, persisted_rate=800.0) == pytest.approx(720.0)
    # ... but never less than half the current rate in one step (the pool may only have paused).
    assert bound().decide(rate=1500.0, lag=5000.0, sent_rate=1500.0, persisted_rate=100.0) == pytest.approx(750.0)


def test_never_below_the_minimum_rate() -> None:
    assert bound().decide(rate=30.0, lag=10_000.0, sent_rate=30.0, persisted_rate=0.0) == 20.0


def test_a_server_limited_load_is_not_raised_further() -> None:
    # The servers took 400/s of the 1,000 offered: stay at 1.5 x what they take.
    assert bound().decide(rate=1000.0, lag=100.0, sent_rate=400.0, persisted_rate=400.0) == pytest.approx(600.0)


def test_pacer_rate_changes_and_a_bounded_backlog() -> None:
    pacer = Pacer(None, max_backlog_s=0.2)
    assert pacer.rate is None
    pacer.set_rate(50.0)
    assert pacer.rate == pytest.approx(50.0)


def test_samples_are_interpolated_at_the_window_edges() -> None:
    samples = [(10.0, 0, 0, 1.0), (11.0, 100, 50, 1.0), (12.0, 300, 250, 1.0)]
    assert _at(samples, 10.5, 2) == pytest.approx(25.0)
    assert _at(samples, 11.5, 1) == pytest.approx(200.0)
    assert _at(samples, 5.0, 2) == 0.0 and _at(samples, 20.0, 2) == 250.0
    assert _at([], 1.0, 2) == 0.0


def test_batch_rates_are_votes_and_the_pacer_paces_requests() -> None:
    batches = LagBound(Pacer(None), min_rate=1000.0, votes_per_request=1000)
    batches.set_rate(5000.0)
    assert batches.pacer.rate == pytest.approx(5.0)
    assert batches.rate == pytest.approx(5000.0)
