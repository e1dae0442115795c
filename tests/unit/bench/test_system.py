"""bench.scenarios.system: the lag-bounded load's decisions and the window interpolation (no
services)."""

from __future__ import annotations

import pytest

from bench.harness.loadgen import Pacer
from bench.scenarios.system import LagBound, _at


def bound() -> LagBound:
    return LagBound(Pacer(1000.0), min_rate=20.0, target_lag_s=1.0, min_lag=200.0, correction_s=4.0)


def test_with_no_lag_the_rate_grows_25_percent_a_tick() -> None:
    # The pool keeps up, so what it persisted is what was offered: that is no ceiling.
    assert bound().decide(
        rate=1000.0, lag=0.0, offered_rate=1000.0, sent_rate=1000.0, persisted_rate=1000.0
    ) == pytest.approx(1250.0)


def test_the_closer_the_lag_to_its_target_the_smaller_the_step() -> None:
    # Target 1 s x 1,000/s = 1,000; 500 behind: half the step; at the target: none.
    assert bound().decide(
        rate=1000.0, lag=500.0, offered_rate=1000.0, sent_rate=1000.0, persisted_rate=1000.0
    ) == pytest.approx(1125.0)
    assert bound().decide(
        rate=1000.0, lag=1000.0, offered_rate=1000.0, sent_rate=1000.0, persisted_rate=1000.0
    ) == pytest.approx(1000.0)


def test_a_lag_above_target_offers_less_than_the_pool_persists() -> None:
    # Target 1 s x 800/s = 800; 1,200 behind: 800 - 400 / 4 s = 700/s.
    assert bound().decide(
        rate=1000.0, lag=1200.0, offered_rate=1000.0, sent_rate=1000.0, persisted_rate=800.0
    ) == pytest.approx(700.0)
    # 2,800 behind: 800 - 2,000 / 4 s = 300/s, but at most halved a tick.
    assert bound().decide(
        rate=1000.0, lag=2800.0, offered_rate=1000.0, sent_rate=1000.0, persisted_rate=800.0
    ) == pytest.approx(500.0)


def test_a_lag_above_target_never_raises_the_rate() -> None:
    # The pool persisted more than offered (it was catching up), yet it is behind: hold.
    assert bound().decide(
        rate=600.0, lag=1500.0, offered_rate=600.0, sent_rate=600.0, persisted_rate=1000.0
    ) == pytest.approx(600.0)


def test_never_below_the_minimum_rate() -> None:
    assert (
        bound().decide(
            rate=30.0, lag=10_000.0, offered_rate=30.0, sent_rate=30.0, persisted_rate=0.0
        )
        == 20.0
    )


def test_a_server_limited_load_is_not_raised_further() -> None:
    # The servers took 400/s of the 1,000 offered: at most 1.5 x what they take.
    assert bound().decide(
        rate=1000.0, lag=0.0, offered_rate=1000.0, sent_rate=400.0, persisted_rate=400.0
    ) == pytest.approx(600.0)
    # A rate raised within the window is compared with what was offered in it, not with now.
    assert bound().decide(
        rate=2000.0, lag=0.0, offered_rate=1000.0, sent_rate=950.0, persisted_rate=950.0
    ) == pytest.approx(2500.0)


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
