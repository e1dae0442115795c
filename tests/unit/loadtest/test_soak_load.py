"""The soak's locust run: the plan reaches the locustfile through the environment, and the
progress samples cover the warm-up and the end. No services."""

from __future__ import annotations

import pytest

from loadtest import capacity as cap
from loadtest import soak_load


def test_locust_env_carries_the_plan() -> None:
    plan = cap.plan_load(10.0, 0.5, 2.0, None, 0.7)
    env = soak_load.locust_env(plan)
    assert env["VOTES_SOAK_HTTP_USERS"] == "3" and env["VOTES_SOAK_GRPC_USERS"] == "3"
    assert float(env["VOTES_SOAK_HTTP_USER_RATE"]) * 3 == pytest.approx(5.0)


def test_sample_times_cover_warmup_and_the_end() -> None:
    assert soak_load.sample_times(600, 60, 30) == [30 * k for k in range(1, 20)] + [597]
    assert soak_load.sample_times(60, 15, 30) == [15, 30, 57]
