"""Uncertainty of the benchmark's comparisons: bootstrap confidence intervals over the repeats.

A scenario runs a few repeats (5 in a full run); a comparison of two scenarios is the ratio of
their medians. Its 95% interval comes from resampling each scenario's repeats with replacement
(10,000 times, a fixed seed: the same data gives the same interval) and taking the 2.5th and
97.5th percentiles of the resampled ratios. When the interval contains 1 the data cannot tell the
two apart: "no clear difference".

    ratio_ci([1510, 1490, 1530], [1000, 980, 1020])       -> Interval(point=1.51, low=..., high=...)
    verdict("HTTP", http_rates, "gRPC", grpc_rates)       -> "HTTP is 1.5x faster (95% CI 1.4-1.6)"
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 16


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap interval; `n` is the fewest repeats of any input."""

    point: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def label(self) -> str:
        """E.g. "95% CI 1.38-1.62"; with a single repeat there is no interval to give."""
        if self.n < 2:
            return "1 repeat: no CI"
        return f"{round(100 * self.confidence)}% CI {_fmt(self.low)}-{_fmt(self.high)}"

    def inverse(self) -> Interval:
        """The interval of 1 / the ratio (each resampled ratio inverted: the bounds swap)."""
        return Interval(1 / self.point, 1 / self.high, 1 / self.low, self.n, self.confidence)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "point": round(self.point, 4),
            "low": round(self.low, 4),
            "high": round(self.high, 4),
            "n": self.n,
            "confidence": self.confidence,
        }


def _fmt(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on sorted data."""
    position = q * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def bootstrap(
    groups: Sequence[Sequence[float]],
    combine: Callable[[list[float]], float],
    *,
    statistic: Callable[[Sequence[float]], float] = statistics.median,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """Interval of `combine([statistic(group) for group in groups])`, each group resampled on
    its own. `combine` gets one statistic per group, in order (e.g. lambda m: m[0] / m[1])."""
    if not groups or any(len(group) == 0 for group in groups):
        raise ValueError("bootstrap: every group needs at least one value")
    if not 0 < confidence < 1:
        raise ValueError(f"bootstrap: confidence {confidence} is not between 0 and 1")
    point = combine([statistic(group) for group in groups])
    n = min(len(group) for group in groups)
    if n < 2:
        return Interval(point, point, point, n, confidence)
    rng = random.Random(seed)
    values = []
    for _ in range(resamples):
        resampled = [statistic(rng.choices(group, k=len(group))) for group in groups]
        try:
            values.append(combine(resampled))
        except ZeroDivisionError:
            continue
    if not values:
        raise ValueError("bootstrap: every resample divided by zero")
    values.sort()
    tail = (1 - confidence) / 2
    return Interval(point, _quantile(values, tail), _quantile(values, 1 - tail), n, confidence)


def ratio_ci(
    numerator: Sequence[float], denominator: Sequence[float], **options: float
) -> Interval:
    """median(numerator) / median(denominator), with its bootstrap interval."""
    if statistics.median(denominator) == 0:
        raise ValueError("ratio_ci: the denominator's median is 0")
    return bootstrap([numerator, denominator], lambda m: m[0] / m[1], **options)  # type: ignore[arg-type]


def verdict(
    name_a: str, a: Sequence[float], name_b: str, b: Sequence[float]
) -> tuple[str, Interval]:
    """Which of two scenarios is faster (their repeat rates), and by how much, with the CI:
    "HTTP is 1.5x faster (95% CI 1.4-1.6)" or "no clear difference (95% CI 0.9-1.2 contains 1)".
    The ratio is always the faster over the slower, so it reads as "N times faster"."""
    a_over_b = ratio_ci(a, b)
    faster, ratio = (name_a, a_over_b) if a_over_b.point >= 1 else (name_b, a_over_b.inverse())
    if ratio.n < 2:
        return f"{faster} is {ratio.point:.2f}x faster ({ratio.label})", ratio
    if ratio.contains(1.0):
        return f"no clear difference ({ratio.label} contains 1)", ratio
    return f"{faster} is {ratio.point:.2f}x faster ({ratio.label})", ratio


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
