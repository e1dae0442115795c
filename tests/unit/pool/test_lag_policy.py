"""The pool's lag policy over lag histories, then through Ray Serve's own policy machinery.

`replay()` feeds a history (one total lag per tick, None = no metrics) to `decide()` the way the
Serve controller would: each running replica reports its share of the lag, and the decision is
applied before the next tick.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from serve_app.pool.lag_policy import LagPolicy, LagPolicyConfig, decide, lag_policy, total_lag

ROOT = Path(__file__).resolve().parents[3]
# config.yaml sets the pool's metrics_interval_s on purpose (see the comment there).
pytestmark = pytest.mark.filterwarnings("ignore:The `metrics_interval_s` field:DeprecationWarning")
T0 = 1_800_000_000.0
# Short, round numbers so the expected timelines can be read off the test.
CONFIG = LagPolicyConfig(
    target_lag_per_replica=10_000,
    low_water_lag=1_000,
    drained_hold_s=30,
    upscale_cooldown_s=10,
    downscale_cooldown_s=30,
    max_step_up=2,
    max_step_down=1,
    partitions=6,
)


def replay(
    history: Sequence[float | None],
    *,
    start: int = 1,
    config: LagPolicyConfig = CONFIG,
    min_replicas: int = 1,
    max_replicas: int = 6,
    tick_s: float = 1.0,
) -> list[int]:
    """The replica count after each tick of the history."""
    state: dict[str, Any] = {}
    current = start
    counts = []
    for i, lag in enumerate(history):
        now = T0 + i * tick_s
        samples = (
            {}
            if lag is None
            else {
                f"replica-{k}": [(now - 2, lag / current), (now, lag / current)]
                for k in range(current)
            }
        )
        decision = decide(samples, current, min_replicas, max_replicas, now, state, config)
        state, current = decision.state, decision.replicas
        counts.append(current)
    return counts


def changes(counts: Sequence[int], start: int) -> list[tuple[int, int, int]]:
    """(tick, before, after) of every change."""
    out, before = [], start
    for tick, count in enumerate(counts):
        if count != before:
            out.append((tick, before, count))
        before = count
    return out


# ---- recorded histories ----------------------------------------------------------------------


def test_a_burst_scales_up_step_by_step_to_the_partitions() -> None:
    counts = replay([0] * 5 + [60_000] * 40)
    assert changes(counts, 1) == [(5, 1, 3), (16, 3, 5), (27, 5, 6)]
    assert max(counts) == 6


# The consumer group's lag, sampled every 2 s by the multi-node scenario (tests/autoscaling) while
# 150,000 votes went into the topic and three consumers drained them.
RECORDED_BURST = [
    0,
    0,
    0,
    12_983,
    29_783,
    39_198,
    57_891,
    64_986,
    92_226,
    114_000,
    113_000,
    112_000,
    112_000,
    110_000,
    108_000,
    105_000,
    105_000,
    102_000,
    100_000,
    98_000,
    94_000,
    91_000,
    86_000,
    85_000,
    75_000,
    68_000,
    55_000,
    44_000,
    34_000,
    24_000,
    15_000,
    3_443,
] + [0] * 60


def test_a_recorded_burst_scales_up_then_back_down_once_drained() -> None:
    counts = replay(RECORDED_BURST, tick_s=2.0)
    # Ticks of 2 s: up 2 at a time, each step after the 10 s cool-down (seen at the next tick);
    # down only from tick 47 (t 94 s), 30 s after the lag reached 0 at tick 32, one at a time.
    assert changes(counts, 1) == [
        (3, 1, 2),
        (9, 2, 4),
        (15, 4, 6),
        (47, 6, 5),
        (63, 5, 4),
        (79, 4, 3),
    ]
    # With the scenario's max_replicas of 3.
    assert changes(replay(RECORDED_BURST, tick_s=2.0, max_replicas=3), 1) == [
        (3, 1, 2),
        (9, 2, 3),
        (47, 3, 2),
        (63, 2, 1),
    ]


def test_a_burst_that_shrinks_stops_the_scale_up_where_the_lag_is_met() -> None:
    # 45k behind -> wants 5; by the second step only 25k are left -> 3 are enough.
    counts = replay([45_000] * 10 + [25_000] * 30)
    assert changes(counts, 1) == [(0, 1, 3)]


def test_a_steady_lag_the_pool_keeps_up_with_holds() -> None:
    # 3 replicas, lag between what 2 and 3 replicas should carry: nothing to do.
    assert set(replay([25_000, 18_000, 29_000, 21_000] * 30, start=3)) == {3}
    # Below target but above the low-water mark: not drained, so no scale-down either.
    assert set(replay([5_000, 3_000, 8_000] * 40, start=3)) == {3}


def test_a_drained_lag_scales_down_one_step_per_hold() -> None:
    counts = replay([0] * 120, start=4)
    assert changes(counts, 4) == [(30, 4, 3), (61, 3, 2), (92, 2, 1)]
    assert counts[-1] == 1


def test_the_hold_starts_again_after_lag_comes_back() -> None:
    counts = replay([0] * 20 + [5_000] + [0] * 40, start=2)
    assert changes(counts, 2) == [(51, 2, 1)]  # 30 s after the blip, not after the first zero


def test_flapping_lag_never_flaps_the_pool() -> None:
    counts = replay([25_000, 0] * 100)
    # Up to what the peaks ask for, and it stays there: alternating lag is never "drained".
    assert changes(counts, 1) == [(0, 1, 3)]
    around_target = replay([9_000, 11_000, 10_500, 9_500] * 50)
    assert changes(around_target, 1) == [(1, 1, 2)]


def test_never_more_replicas_than_partitions() -> None:
    assert max(replay([10_000_000] * 60, max_replicas=10)) == 6
    few = LagPolicyConfig(**{**CONFIG.__dict__, "partitions": 3})
    assert max(replay([10_000_000] * 60, config=few)) == 3
    # Already above the cap (the topic was shrunk, max_replicas lowered): back under it at once.
    assert replay([0], start=8, max_replicas=10)[0] == 6
    assert replay([50_000], start=5, max_replicas=4)[0] == 4


def test_missing_metrics_keep_the_current_size() -> None:
    assert set(replay([None] * 60, start=3)) == {3}
    # A gap also restarts the drained hold: no scale-down on data we did not see.
    counts = replay([0] * 20 + [None] * 5 + [0] * 40, start=2)
    assert changes(counts, 2) == [(55, 2, 1)]


def test_stale_or_partial_samples() -> None:
    now = T0 + 100
    # A replica that stopped reporting 31 s ago (max_sample_age_s 30) is not counted...
    assert total_lag({"a": [(now - 31, 50_000)], "b": [(now - 1, 700)]}, now, 30) == 700
    # ...and with no fresh sample at all the lag is unknown, not 0.
    assert total_lag({"a": [(now - 31, 50_000)]}, now, 30) is None
    assert total_lag({}, now, 30) is None
    # The newest sample of each replica counts; a new replica without samples adds nothing.
    assert total_lag({"a": [(now - 4, 9_000), (now - 2, 3_000)], "b": []}, now, 30) == 3_000
    stale = decide({"a": [(now - 31, 90_000)]}, 2, 1, 6, now, {}, CONFIG)
    assert stale.replicas == 2
    assert "no fresh lag" in stale.reason


def test_min_replicas_is_enforced() -> None:
    assert replay([0], start=0, min_replicas=2)[0] == 2
    assert set(replay([0] * 100, start=2, min_replicas=2)) == {2}


def test_cooldowns_count_from_actual_changes() -> None:
    # Serve may apply a decision later (its upscale_delay_s): while the count has not changed,
    # asking again is not a scale event and starts no cool-down.
    state: dict[str, Any] = {}
    lag = {"r": [(T0, 50_000.0)]}
    for i in range(8):  # Serve holds the decision back for 8 ticks
        decision = decide(lag, 1, 1, 6, T0 + i, state, CONFIG)
        assert decision.replicas == 3
        state = decision.state
    # Serve applies 3; the cool-down starts now, so the next step waits 10 s from here.
    lag = {f"r{k}": [(T0 + 8, 50_000 / 3)] for k in range(3)}
    assert decide(lag, 3, 1, 6, T0 + 8, state, CONFIG).replicas == 3
    state = decide(lag, 3, 1, 6, T0 + 8, state, CONFIG).state
    assert decide(lag, 3, 1, 6, T0 + 17, state, CONFIG).replicas == 3
    assert decide(lag, 3, 1, 6, T0 + 18, state, CONFIG).replicas == 5


@pytest.mark.parametrize(
    "bad",
    [
        {"target_lag_per_replica": 0},
        {"low_water_lag": 20_000},
        {"partitions": 0},
        {"max_step_up": 1.5},
        {"drained_hold_s": -1},
        {"max_sample_age_s": 0},
    ],
)
def test_invalid_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="invalid lag policy settings"):
        LagPolicyConfig(**bad)


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(TypeError):
        LagPolicy(target_lag=5)


# ---- through Ray Serve's machinery ----------------------------------------------------------


def _pool_autoscaling_config() -> Any:
    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(yaml.safe_load((ROOT / "config.yaml").read_text()))
    (pool,) = [d for d in config.applications[0].deployments if d.name == "VotePersister"]
    from ray.serve.config import AutoscalingConfig

    return AutoscalingConfig(**pool.autoscaling_config)


def _context(
    config: Any, lag_by_replica: dict[str, float], target: int, now: float, state: dict[str, Any]
) -> Any:
    from ray.serve._private.common import DeploymentID, ReplicaID, TimeStampedValue
    from ray.serve.config import AutoscalingContext

    deployment = DeploymentID(name="VotePersister", app_name="votes")
    replicas = {
        name: ReplicaID(unique_id=name, deployment_id=deployment) for name in lag_by_replica
    }
    raw = {
        "lag": {
            replicas[name]: [TimeStampedValue(now - 2, lag), TimeStampedValue(now, lag)]
            for name, lag in lag_by_replica.items()
        }
    }
    return AutoscalingContext(
        deployment_id=deployment,
        deployment_name="VotePersister",
        app_name="votes",
        current_num_replicas=len(replicas),
        target_num_replicas=target,
        running_replicas=list(replicas.values()),
        total_num_requests=0.0,
        total_queued_requests=0.0,
        aggregated_metrics=dict,
        raw_metrics=lambda: raw,
        capacity_adjusted_min_replicas=config.min_replicas,
        capacity_adjusted_max_replicas=config.max_replicas,
        policy_state=state,
        last_scale_up_time=None,
        last_scale_down_time=None,
        current_time=now,
        config=config,
    )


def test_config_yaml_wires_the_lag_policy_with_its_settings() -> None:
    from ray.serve._private.autoscaling_state import _resolve_policy_callable

    config = _pool_autoscaling_config()
    assert config.policy.policy_function == "serve_app.pool.lag_policy:LagPolicy"
    policy = _resolve_policy_callable(config.policy)  # what the controller does at deploy time
    assert isinstance(policy, LagPolicy)
    assert policy.config == LagPolicyConfig(**config.policy.policy_kwargs)
    assert config.max_replicas == policy.config.partitions  # no consumer without a partition


def test_the_policy_under_serves_wrapper_and_delays(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A burst then a drain, through Serve's wrapper (upscale_delay_s etc.) with config.yaml's
    settings: Serve ticks every 0.1 s; replica counts change only where the policy says."""
    from ray.serve import autoscaling_policy
    from ray.serve._private.autoscaling_state import _resolve_policy_callable
    from ray.serve.autoscaling_policy import _apply_autoscaling_config

    caplog.set_level(logging.INFO, logger="ray.serve")
    clock = [T0]  # Serve's delays read the wall clock: give them the simulated one
    monkeypatch.setattr(autoscaling_policy, "time", SimpleNamespace(time=lambda: clock[0]))
    config = _pool_autoscaling_config()
    settings = LagPolicyConfig(**config.policy.policy_kwargs)
    policy = _apply_autoscaling_config(_resolve_policy_callable(config.policy))
    state: dict[str, Any] = {}
    target, events = 1, []
    for tick in range(int(300 / 0.1)):
        now = clock[0] = T0 + tick * 0.1
        total = 80_000.0 if now - T0 < 60 else 0.0  # 60 s of backlog, then drained
        lags = {f"r{k}": total / target for k in range(target)}
        decided, state = policy(_context(config, lags, target, now, state))
        if decided != target:
            events.append((round(now - T0, 1), target, decided))
            target = decided
    ups = [e for e in events if e[2] > e[1]]
    downs = [e for e in events if e[2] < e[1]]
    # Up after Serve's upscale delay, 2 at a time, each step after cool-down + delay, to the cap.
    assert ups[0][0] == pytest.approx(config.upscale_delay_s, abs=0.15)
    assert [e[2] for e in ups] == [3, 5, 6]
    gaps = [b[0] - a[0] for a, b in pairwise(ups)]
    assert all(gap >= settings.upscale_cooldown_s for gap in gaps)
    # Down only after the lag has been drained for the hold, one at a time.
    assert downs[0][0] >= 60 + settings.drained_hold_s
    assert all(e[1] - e[2] == 1 for e in downs)
    assert [e[2] for e in downs] == [5, 4, 3, 2, 1]
    assert state.get("lag_policy_last_reason")
    # Serve asked every 0.1 s, but each new size was logged once, not once per tick.
    asked = [r for r in caplog.records if r.getMessage().startswith("lag policy, VotePersister")]
    assert len(asked) == len(events)


def test_the_function_form_uses_the_defaults() -> None:
    config = _pool_autoscaling_config()
    replicas, state = lag_policy(_context(config, {"a": 45_000.0}, 1, T0, {}))
    assert replicas == 1 + LagPolicyConfig().max_step_up
    assert state["lag_policy_seen_replicas"] == 1
