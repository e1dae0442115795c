"""bench.system: the lag-bounded load's decisions and the window interpolation (no services)."""

from __future__ import annotations

import pytest

from bench.loadgen import Pacer
from bench.system import LagBound, _at


def bound() -> LagBound:
    return LagBound(Pacer(1000.0), min_rate=20.0, target_lag_s=1.0, min_lag=200.0, correction_s=4.0)


def test_a_small_lag_and_a_pacer_limited_load_raise_the_rate_at_most_25_percent() -> None:
    # Target 1,000; 100 behind: 1,000 + 900 / 4 s = 1,225/s (under the 25% step).
    assert bound().decide(rate=1000.0, lag=100.0, sent_rate=990.0, persisted_rate=1000.0) == pytest.approx(1225.0)
    assert bound().decide(rate=400.0, lag=0.0, sent_rate=400.0, persisted_rate=400.0) == pytest.approx(500.0)


def test_a_lag_above_target_offers_less_than_the_pool_persists() -> None:
    # Target 1 s x 800/s = 800; 2,800 behind: 800 - 2,000 / 4 s = 300/s, but at most halved a tick.
    assert bound().decide(rate=1000.0, lag=2800.0, sent_rate=1000.0, persisted_rate=800.0) == pytest.approx(500.0)
    assert bound().decide(rate=600.0, lag=1200.0, sent_rate=600.0, persisted_rate=800.0) == pytest.approx(700.0)


def test_at_the_target_the_rate_is_what_the_pool_persists() -> None:
    assert bound().decide(rate=800.0, lag=800.0, sent_rate=800.0, persisted_rate=800.0) == pytest.approx(800.0)


def test_never_below_the_minimum_rate() -> None:
    assert bound().decide(rate=30.0, lag=10_000.0, sent_rate=30.0, persisted_rate=0.0) == 20.0


def test_a_server_limited_load_is_not_raised_further() -> None:
    # The servers took 400/s of the 1,000 offered: at most 1.5 x what they take.
    assert bound().decide(rate=1000.0, lag=0.0, sent_rate=400.0, persisted_rate=1000.0) == pytest.approx(600.0)


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
