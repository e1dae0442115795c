"""The soak's rate: the capacity from the benchmark's results, and the plan that splits a rate
into locust users on both paths. No services."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadtest import capacity as cap


def scenario(name: str, rate: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "votes_per_s": rate, "errors": 0, "reconciled": True} | extra


def test_capacity_is_the_best_single_vote_rate_of_the_shipped_setup() -> None:
    results = {
        "scenarios": [
            scenario("serve_http_single", 67.2),  # Serve's default proxy: not what make run ships
            scenario("serve_http_single[haproxy]", 251.4),
            scenario("serve_grpc_single[haproxy]", 323.1),
            scenario("serve_grpc_batch[haproxy]", 7400.0),  # batches: not single votes
            scenario("plain_http_peer", 1605.1),
        ]
    }
    found = cap.capacity_from_results(results)
    assert found is not None and found.votes_per_s == 323.1
    assert "serve_grpc_single[haproxy]" in found.source
    assert found.rate() == pytest.approx(226.17)


def test_capacity_takes_a_system_scenario_and_skips_failed_runs() -> None:
    results = {
        "scenarios": [
            scenario("system_single", 400.0, errors=3),
            scenario("system_single[http]", 350.0),
            scenario("serve_http_single[haproxy]", 380.0, reconciled=False),
            scenario("serve_grpc_single[haproxy]", None),
        ]
    }
    found = cap.capacity_from_results(results)
    assert found is not None and found.votes_per_s == 350.0


def test_capacity_absent(tmp_path: Path) -> None:
    assert cap.capacity_from_results({}) is None
    assert cap.capacity_from_results({"scenarios": [scenario("persist_x1", 4000)]}) is None
    assert cap.capacity_from_file(tmp_path / "missing.json") is None
    (tmp_path / "broken.json").write_text("{not json")
    assert cap.capacity_from_file(tmp_path / "broken.json") is None
    (tmp_path / "list.json").write_text(json.dumps([1, 2]))
    assert cap.capacity_from_file(tmp_path / "list.json") is None


def test_capacity_from_file(tmp_path: Path) -> None:
    path = tmp_path / "latest.json"
    path.write_text(json.dumps({"scenarios": [scenario("serve_http_single[haproxy]", 100.0)]}))
    found = cap.capacity_from_file(path)
    assert found is not None and found.votes_per_s == 100.0 and str(path) in found.source


def test_users_send_exactly_the_rate_none_faster_than_the_cap() -> None:
    users, each = cap.users_for(113.0, max_per_user=2.0)
    assert users == 57 and each <= 2.0 and users * each == pytest.approx(113.0)
    assert cap.users_for(4.0, 2.0) == (2, 2.0)
    assert cap.users_for(0.0, 2.0) == (0, 0.0)
    with pytest.raises(ValueError, match="positive"):
        cap.users_for(10.0, 0)


def test_plan_splits_between_paths() -> None:
    plan = cap.plan_load(200.0, grpc_share=0.25, max_user_rate=2.0, capacity=None, share=0.7)
    assert (plan.http_rate, plan.grpc_rate) == (150.0, 50.0)
    assert (plan.http_users, plan.grpc_users) == (75, 25)
    with pytest.raises(ValueError, match="gRPC share"):
        cap.split_rate(100.0, 1.5)
