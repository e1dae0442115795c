"""bench.harness.stats: bootstrap intervals of ratios of medians, and the verdict the report
prints."""

from __future__ import annotations

import pytest

from bench.harness.stats import bootstrap, ratio_ci, verdict


def test_a_clear_difference_has_an_interval_above_one() -> None:
    fast = [2010.0, 1985.0, 2040.0, 1995.0, 2020.0]
    slow = [1000.0, 990.0, 1015.0, 1005.0, 980.0]
    interval = ratio_ci(fast, slow)
    assert interval.point == pytest.approx(2010 / 1000)
    assert 1.9 < interval.low <= interval.point <= interval.high < 2.1
    text, _ = verdict("HTTP", fast, "gRPC", slow)
    assert text.startswith("HTTP is 2.01x faster (95% CI ")


def test_overlapping_repeats_give_no_clear_difference() -> None:
    a = [1000.0, 1200.0, 900.0, 1100.0, 950.0]
    b = [1050.0, 980.0, 1150.0, 920.0, 1010.0]
    text, interval = verdict("HTTP", a, "gRPC", b)
    assert interval.low < 1 < interval.high
    assert text.startswith("no clear difference (95% CI ") and text.endswith("contains 1)")


def test_the_slower_first_reads_as_the_other_faster() -> None:
    text, interval = verdict("HTTP", [100.0, 101.0, 99.0], "gRPC", [300.0, 305.0, 298.0])
    assert text.startswith("gRPC is 3.00x faster")
    assert interval.point == pytest.approx(3.0) and interval.low > 2.9


def test_the_same_data_gives_the_same_interval() -> None:
    a, b = [5.0, 7.0, 6.0, 9.0, 4.0], [3.0, 4.0, 5.0, 3.5, 4.5]
    assert ratio_ci(a, b) == ratio_ci(a, b)


def test_one_repeat_has_no_interval() -> None:
    interval = ratio_ci([10.0], [5.0])
    assert (interval.point, interval.low, interval.high, interval.n) == (2.0, 2.0, 2.0, 1)
    assert interval.label == "1 repeat: no CI"


def test_a_combined_statistic_of_three_groups() -> None:
    ours, floor, peer = [300.0, 310.0, 290.0], [100.0, 100.0, 100.0], [100.0, 100.0, 100.0]
    interval = bootstrap([ours, floor, peer], lambda m: m[0] / (m[1] + m[2]))
    assert interval.point == pytest.approx(1.5)
    assert 1.45 <= interval.low <= interval.high <= 1.55


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        ratio_ci([], [1.0])
    with pytest.raises(ValueError, match="denominator's median is 0"):
        ratio_ci([1.0], [0.0])
