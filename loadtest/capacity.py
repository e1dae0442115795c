"""The soak's rate: a share (70%) of the measured single-vote capacity of the shipped setup.

The capacity comes from the benchmark's results (bench/results/latest.json): the best
votes/s of the single-vote scenarios that ran what `make run` ships (HAProxy in front of direct
ingress): `serve_http_single[haproxy]`, `serve_grpc_single[haproxy]`, or an end-to-end
`system_single...` scenario. Results with errors or without an exact reconciliation do not
count. With no such figure the soak calibrates (a short closed-loop burst on both paths).
The plan (LoadPlan) splits that rate between HTTP and gRPC into locust users of a fixed rate each.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_RESULTS = ROOT / "bench" / "results" / "latest.json"
DEFAULT_SHARE = 0.70
# The shipped setup's single-vote scenarios, by name.
SINGLE_VOTE_SCENARIO = re.compile(r"^(system_single(\[.*\])?|serve_(http|grpc)_single\[haproxy\])$")


@dataclass(frozen=True)
class Capacity:
    votes_per_s: float
    source: str  # where the figure came from, for the report

    def rate(self, share: float = DEFAULT_SHARE) -> float:
        return self.votes_per_s * share


def _usable(scenario: dict[str, Any]) -> float | None:
    if not SINGLE_VOTE_SCENARIO.match(str(scenario.get("name", ""))):
        return None
    if scenario.get("errors") not in (0, None) or scenario.get("reconciled") is False:
        return None
    rate = scenario.get("votes_per_s")
    if not isinstance(rate, int | float) or rate <= 0:
        return None
    return float(rate)


def capacity_from_results(results: dict[str, Any], where: str = "bench results") -> Capacity | None:
    """The best single-vote rate of the shipped setup in a bench results document, or None."""
    best: Capacity | None = None
    for scenario in results.get("scenarios") or []:
        if not isinstance(scenario, dict):
            continue
        rate = _usable(scenario)
        if rate is not None and (best is None or rate > best.votes_per_s):
            when = scenario.get("measured_at") or (results.get("machine") or {}).get("when", "")
            best = Capacity(
                rate,
                f"{where}: {scenario['name']} {rate:g} votes/s"
                + (f" (measured {when})" if when else ""),
            )
    return best


def capacity_from_file(path: Path = BENCH_RESULTS) -> Capacity | None:
    """capacity_from_results of the file; None when it is missing or unreadable."""
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(results, dict):
        return None
    try:
        shown = path.relative_to(ROOT)
    except ValueError:
        shown = path
    return capacity_from_results(results, str(shown))


def split_rate(total: float, grpc_share: float) -> tuple[float, float]:
    """(HTTP votes/s, gRPC votes/s) of a total rate."""
    if not 0 <= grpc_share <= 1:
        raise ValueError(f"the gRPC share must be between 0 and 1, not {grpc_share}")
    return total * (1 - grpc_share), total * grpc_share


def users_for(rate: float, max_per_user: float) -> tuple[int, float]:
    """(locust users, votes/s each) that send exactly `rate` votes/s, none faster than
    max_per_user; (0, 0.0) for rate 0."""
    if max_per_user <= 0:
        raise ValueError(f"the rate per user must be positive, not {max_per_user}")
    if rate <= 0:
        return 0, 0.0
    users = math.ceil(rate / max_per_user - 1e-9)
    return users, rate / users


@dataclass
class LoadPlan:
    rate: float
    http_rate: float
    grpc_rate: float
    http_users: int
    http_user_rate: float
    grpc_users: int
    grpc_user_rate: float
    capacity: Capacity | None
    share: float

    def as_dict(self) -> dict[str, Any]:
        plan = self.__dict__.copy()
        plan["capacity"] = None if self.capacity is None else self.capacity.__dict__
        return plan


def plan_load(
    rate: float,
    grpc_share: float,
    max_user_rate: float,
    capacity: Capacity | None,
    share: float,
) -> LoadPlan:
    http_rate, grpc_rate = split_rate(rate, grpc_share)
    http_users, http_user_rate = users_for(http_rate, max_user_rate)
    grpc_users, grpc_user_rate = users_for(grpc_rate, max_user_rate)
    return LoadPlan(
        rate=rate,
        http_rate=http_rate,
        grpc_rate=grpc_rate,
        http_users=http_users,
        http_user_rate=http_user_rate,
        grpc_users=grpc_users,
        grpc_user_rate=grpc_user_rate,
        capacity=capacity,
        share=share,
    )
