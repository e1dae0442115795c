"""The consumer pool's autoscaling policy: replicas follow the Kafka consumer lag.

Serve's default policy scales on ongoing requests, which the pool has none of: its replicas pull
from Kafka. Each `VotePersister` replica reports the lag of the partitions it owns through
`record_autoscaling_stats()` ({"lag": records behind, "partitions": partitions assigned}); Serve
records those every few seconds, pushes them to the controller, and the controller calls this
policy on every control-loop tick (about 10 times a second) with an `AutoscalingContext`.

The decision is `decide()`, a pure function of the lag samples, the current replica count, the
bounds, the time and the policy's own state, so it is unit-tested over recorded lag histories
(tests/unit/pool/test_lag_policy.py). `LagPolicy` is the thin adapter Serve calls; config.yaml
refers to it with its settings:

    autoscaling_config:
      policy:
        policy_function: serve_app.pool.lag_policy:LagPolicy
        policy_kwargs: {target_lag_per_replica: ..., partitions: 6, ...}

(Ray 2.60 passes `policy_kwargs` only to a class: it instantiates the class once per deployment
and calls the instance on each tick. `lag_policy` is the same policy as a plain function with the
defaults, for `policy_function: serve_app.pool.lag_policy:lag_policy`.)

The rules, in order:

1. No fresh lag sample from any replica (starting up, metrics not pushed yet, a broken stats
   call): keep the current replica count. Never scale on missing data.
2. Desired = ceil(total lag / target lag per replica), within [min, max], and never more replicas
   than the topic has partitions: a consumer without a partition only costs a CPU.
3. Up: when the lag asks for more replicas and the last scale event is at least
   `upscale_cooldown_s` old, add at most `max_step_up` replicas. Step by step, so that each new
   consumer gets its partitions (a rebalance) and shows its effect before the next step.
4. Down: only when the total lag has stayed at or below `low_water_lag` for `drained_hold_s`
   (the backlog is gone, not just smaller) and the last scale event is at least
   `downscale_cooldown_s` old; remove at most `max_step_down` replicas, then hold again.
   A lag that is merely below target never shrinks the pool, so a lag oscillating around the
   target cannot make it flap.

Serve wraps any custom policy with its own `upscale_delay_s` / `downscale_delay_s` (Ray 2.60's
`_apply_autoscaling_config`): a decision applies only once the policy has asked for it without a
break for that long. config.yaml uses the upscale delay as a filter for short blips of lag and
sets the downscale delay to 0 (the drained hold above does that job). The cool-downs here count
from the moments the replica count actually changed, so they stay right whatever Serve's delays.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

log = logging.getLogger("ray.serve")

LAG_METRIC = "lag"  # the key VotePersister.record_autoscaling_stats() reports

# State keys. Serve merges its own keys into the same dict: ours carry a prefix.
_LAST_SCALE_AT = "lag_policy_last_scale_at"
_DRAINED_SINCE = "lag_policy_drained_since"
_LAST_REASON = "lag_policy_last_reason"
_SEEN_REPLICAS = "lag_policy_seen_replicas"
_ASKED = "lag_policy_asked"  # the size last asked for (logging only)


@dataclass(frozen=True)
class LagPolicyConfig:
    """The policy's settings; config.yaml sets them as `policy_kwargs` (explained there)."""

    target_lag_per_replica: float = 10_000
    low_water_lag: float = 500
    drained_hold_s: float = 30.0
    upscale_cooldown_s: float = 10.0
    downscale_cooldown_s: float = 30.0
    max_step_up: int = 2
    max_step_down: int = 1
    partitions: int = 6
    max_sample_age_s: float = 30.0

    def __post_init__(self) -> None:
        problems = []
        if not self.target_lag_per_replica > 0:
            problems.append("target_lag_per_replica must be > 0")
        if not 0 <= self.low_water_lag < self.target_lag_per_replica:
            problems.append("low_water_lag must be >= 0 and below target_lag_per_replica")
        for name in ("drained_hold_s", "upscale_cooldown_s", "downscale_cooldown_s"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        for name in ("max_step_up", "max_step_down", "partitions"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f"{name} must be an integer >= 1")
        if not self.max_sample_age_s > 0:
            problems.append("max_sample_age_s must be > 0")
        if problems:
            raise ValueError("invalid lag policy settings: " + "; ".join(problems))


class Decision(NamedTuple):
    replicas: int
    state: dict[str, Any]
    reason: str


Sample = tuple[float, float]  # (timestamp in seconds, lag in records)


def total_lag(
    samples: Mapping[Hashable, Iterable[Sample]], now: float, max_age_s: float
) -> float | None:
    """Sum over replicas of each replica's newest sample not older than max_age_s.

    None when no replica has a fresh sample: the lag is unknown, which is not the same as 0.
    """
    total: float | None = None
    for series in samples.values():
        newest: Sample | None = None
        for timestamp, value in series:
            if newest is None or timestamp >= newest[0]:
                newest = (timestamp, value)
        if newest is None or now - newest[0] > max_age_s or not math.isfinite(newest[1]):
            continue
        total = (total or 0.0) + max(0.0, newest[1])
    return total


def decide(
    samples: Mapping[Hashable, Iterable[Sample]],
    current: int,
    min_replicas: int,
    max_replicas: int,
    now: float,
    state: Mapping[str, Any],
    config: LagPolicyConfig,
) -> Decision:
    """The pool's replica count for this tick. Pure: everything it needs is an argument.

    samples: per replica, its recent (timestamp, lag) samples. current: the replica count Serve
    is aiming at now. min/max: Serve's bounds. state: what the previous call returned ({} first).

    Cool-downs count from the last time `current` actually changed (seen from one call to the
    next), not from when this function asked for a change: Serve may apply a decision later
    (its own upscale/downscale delays) or not at all.
    """
    new_state = dict(state)
    new_state[_SEEN_REPLICAS] = current
    last_scale_at: float | None = state.get(_LAST_SCALE_AT)
    drained_since: float | None = state.get(_DRAINED_SINCE)
    seen = state.get(_SEEN_REPLICAS)
    if seen is not None and seen != current:
        last_scale_at = now  # the pool changed size since the previous call
        drained_since = None  # a new size has to prove itself drained again
    new_state[_LAST_SCALE_AT] = last_scale_at
    since_scale = math.inf if last_scale_at is None else now - last_scale_at
    ceiling = max(1, min(max_replicas, config.partitions))
    floor = min(min_replicas, ceiling)

    def result(replicas: int, reason: str, drained_at: float | None = None) -> Decision:
        new_state[_DRAINED_SINCE] = drained_at
        new_state[_LAST_REASON] = reason
        return Decision(replicas, new_state, reason)

    # Bounds first: they hold whatever the metrics say.
    if current > ceiling:
        return result(
            ceiling,
            f"{current} replicas exceed the cap of {ceiling} "
            f"(max_replicas {max_replicas}, partitions {config.partitions})",
        )
    if current < floor:
        return result(floor, f"{current} replicas are below min_replicas {floor}")

    lag = total_lag(samples, now, config.max_sample_age_s)
    if lag is None:
        return result(current, "no fresh lag metrics: keeping the current size")

    wanted = max(floor, min(ceiling, math.ceil(lag / config.target_lag_per_replica)))

    if wanted > current:
        if since_scale < config.upscale_cooldown_s:
            return result(
                current,
                f"lag {lag:.0f} wants {wanted} replicas; "
                f"cooling down ({since_scale:.1f}s since the last change)",
            )
        target = min(wanted, current + config.max_step_up)
        return result(
            target,
            f"lag {lag:.0f} > {config.target_lag_per_replica:.0f} x {current}:"
            f" scaling up to {target} (wants {wanted})",
        )

    if lag > config.low_water_lag:
        return result(
            current,
            f"lag {lag:.0f} asks for {wanted} of {current} replicas; not drained, so no scale-down",
        )

    drained_since = now if drained_since is None else drained_since
    if current <= floor:
        return result(current, f"lag {lag:.0f} drained, at min {floor}", drained_since)
    drained_for = now - drained_since
    if drained_for < config.drained_hold_s:
        return result(
            current,
            f"lag {lag:.0f} drained for {drained_for:.1f}s of {config.drained_hold_s:g}s",
            drained_since,
        )
    if since_scale < config.downscale_cooldown_s:
        return result(
            current,
            f"lag drained; cooling down ({since_scale:.1f}s since the last change)",
            drained_since,
        )
    target = max(floor, current - config.max_step_down)
    return result(
        target,
        f"lag {lag:.0f} drained for {drained_for:.1f}s: scaling down to {target}",
        drained_since,
    )


# ---- the adapter Serve calls ----------------------------------------------------------------


def lag_samples(ctx: Any) -> dict[Hashable, list[Sample]]:
    """Per replica, its recorded (timestamp, lag) samples from the AutoscalingContext.

    `ctx.raw_metrics` maps metric name -> replica id -> the replica's time series over the
    look-back window (Serve's TimeStampedValue(timestamp, value) points), for running replicas
    that have pushed a report.
    """
    raw = ctx.raw_metrics or {}
    series_by_replica = raw.get(LAG_METRIC) or {}
    return {
        replica_id: [(float(point.timestamp), float(point.value)) for point in series]
        for replica_id, series in series_by_replica.items()
    }


class LagPolicy:
    """Serve's entry point: `policy_function: serve_app.pool.lag_policy:LagPolicy`.

    Ray 2.60 instantiates it once per deployment with `policy_kwargs` and calls it on each tick
    with an AutoscalingContext; it returns (replicas, policy_state).
    """

    def __init__(self, **kwargs: Any) -> None:
        self.config = LagPolicyConfig(**kwargs)
        log.info("lag policy settings: %s", asdict(self.config))

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        return apply_policy(ctx, self.config)


def lag_policy(ctx: Any) -> tuple[int, dict[str, Any]]:
    """The same policy as a plain function, with LagPolicyConfig's defaults."""
    return apply_policy(ctx, LagPolicyConfig())


def apply_policy(ctx: Any, config: LagPolicyConfig) -> tuple[int, dict[str, Any]]:
    """Read the AutoscalingContext, decide, log a change; returns (replicas, policy_state)."""
    current = ctx.target_num_replicas
    decision = decide(
        lag_samples(ctx),
        current=current,
        min_replicas=ctx.capacity_adjusted_min_replicas,
        max_replicas=ctx.capacity_adjusted_max_replicas,
        now=ctx.current_time if ctx.current_time is not None else time.time(),
        state=ctx.policy_state or {},
        config=config,
    )
    # Serve calls this ~10 times a second and may hold a decision back for a while: log a
    # request for a new size once, when it is first made.
    asked = decision.replicas if decision.replicas != current else None
    if asked is not None and asked != decision.state.get(_ASKED):
        log.info(
            "lag policy, %s: %d -> %d replicas (%s)",
            ctx.deployment_name,
            current,
            decision.replicas,
            decision.reason,
        )
    decision.state[_ASKED] = asked
    return decision.replicas, decision.state
