"""`system_single`, `system_batch`: the whole system (ingress + pool) at the most it sustains.

One repeat: votes go in through the full app (`make run`'s build, pool running) for a warm-up and
a sustained window, then the load stops and the pool drains. The load is lag-bounded: a
controller (`LagBound`) steers the offered rate every 0.5 s from the pool's lag, i.e. votes
accepted (acked by Kafka) minus votes counted in Redis: it offers what the pool persisted over
the last 2 s, corrected for the lag off its target (1 s of the pool's work), so the lag settles
where the pool clears it in about a second. Below the target it raises the rate (at most 25% a
tick). The warm-up is where it finds that rate; the window measures it.

Reported per repeat: votes/s accepted and votes/s persisted in the window (the sustained rate is
the lower of the two), the lag when the load stops, the time the pool then takes to count every
record (the target: 5 s), and the reconciliation accepted == records in Kafka == counted.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from bench import loadgen
from bench.common import REDIS_HOST, REDIS_PORT, topic_records, wait_for_count
from serve_app.stores import redis_counts as rc

TICK_S = 0.5


@dataclass
class LagBound:
    """Steers a Pacer: raise the rate while the lag is small, cut it when the pool falls behind.

    Rates here are votes/s; the Pacer paces requests of `votes_per_request` votes (1000 a batch).
    `decide` is pure (unit-tested); `run` is the loadgen Monitor that samples and applies it.
    """

    pacer: loadgen.Pacer
    min_rate: float
    votes_per_request: int = 1
    target_lag_s: float = 1.0  # the lag aimed at: this many seconds of the pool's rate...
    min_lag: float = 200.0  # ... but never less than this (the pool counts in chunks)
    correction_s: float = 4.0  # a lag off target is corrected over this long
    step_up: float = 1.25  # the most the rate grows in one tick
    rate_window_ticks: int = 4  # the pool's rate: over the last 2 s
    steer: bool = True  # False: only sample (a closed-loop run)
    samples: list[tuple[float, int, int, float]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """The offered rate in votes/s (closed loop: the minimum, for the record)."""
        return (self.pacer.rate or 0.0) * self.votes_per_request or self.min_rate

    def set_rate(self, votes_per_s: float) -> None:
        self.pacer.set_rate(votes_per_s / self.votes_per_request)

    def decide(self, rate: float, lag: float, sent_rate: float, persisted_rate: float) -> float:
        """The next offered rate (votes/s): what the pool persists, minus the lag above target
        spread over `correction_s` (plus, when below). Bounded: at most `step_up` times the
        current rate (1.5 times what the servers took, when they are what limits), at least
        half of it (a pause of the pool is not its rate), never under `min_rate`."""
        target = max(self.min_lag, self.target_lag_s * persisted_rate)
        wanted = persisted_rate - (lag - target) / self.correction_s
        server_limited = sent_rate < 0.85 * rate
        ceiling = max(self.min_rate, sent_rate * 1.5) if server_limited else rate * self.step_up
        return max(self.min_rate, rate * 0.5, min(wanted, ceiling))

    async def run(self, counted: Any, counted_before: int, result: loadgen.LoadResult,
                  _window: loadgen.Window) -> None:
        last_t, last_accepted = time.monotonic(), 0
        self.samples.append((last_t, 0, 0, self.rate))  # the start: nothing sent, nothing counted
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            total = int(await counted.get(rc.TOTAL) or 0) - counted_before
            accepted = result.accepted_votes
            sent_rate = (accepted - last_accepted) / max(1e-6, now - last_t)
            rate = self.rate
            self.samples.append((now, accepted, total, rate))
            first = self.samples[max(0, len(self.samples) - 1 - self.rate_window_ticks)]
            persisted_rate = (total - first[2]) / max(TICK_S, now - first[0])
            if self.steer:
                self.set_rate(self.decide(rate, accepted - total, sent_rate, persisted_rate))
            last_t, last_accepted = now, accepted


def _at(samples: list[tuple[float, int, int, float]], t: float, index: int) -> float:
    """Sample column `index` linearly interpolated at time t (clamped to the first/last sample)."""
    if not samples:
        return 0.0
    if t <= samples[0][0]:
        return float(samples[0][index])
    for before, after in itertools.pairwise(samples):
        if before[0] <= t <= after[0]:
            share = (t - before[0]) / max(1e-9, after[0] - before[0])
            return before[index] + share * (after[index] - before[index])
    return float(samples[-1][index])


def system_run(*, protocol: str, kind: str, topic: str, redis_db: int, concurrency: int, warmup_s: float,
               duration_s: float, start_rate: float, min_rate: float, run_tag: str, drain_timeout_s: float,
               http: tuple[str, int] | None = None, grpc_target: str | None = None,
               controlled: bool = True) -> dict[str, Any]:
    """One repeat (see the module docstring). `controlled=False`: closed loop at `concurrency`."""
    import redis.asyncio as aioredis

    counters = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db)
    counted_before = int(counters.get(rc.TOTAL) or 0)
    records_before = topic_records(topic)
    source = loadgen.Bodies(kind, run_tag) if protocol == "http" else loadgen.GrpcMessages(kind, run_tag)
    pacer = loadgen.Pacer(start_rate / source.votes if controlled else None, max_backlog_s=0.2)
    # A lag target of at least 5 requests' worth: batches arrive and are counted 1000 at a time.
    bound = LagBound(pacer, min_rate=min_rate, votes_per_request=source.votes,
                     min_lag=max(200.0, 5.0 * source.votes), steer=controlled)

    async def load() -> loadgen.LoadResult:
        live = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db)

        async def monitor(result: loadgen.LoadResult, window: loadgen.Window) -> None:
            await bound.run(live, counted_before, result, window)

        try:
            if isinstance(source, loadgen.Bodies):
                assert http is not None
                path = "/votes/batch" if kind == "batch" else "/votes"
                return await loadgen.http_load(http[0], http[1], path, source,
                                               concurrency=concurrency, warmup_s=warmup_s,
                                               duration_s=duration_s, pacer=pacer, monitor=monitor)
            assert grpc_target is not None
            return await loadgen.grpc_load(grpc_target, source,
                                           concurrency=concurrency, warmup_s=warmup_s, duration_s=duration_s,
                                           pacer=pacer, monitor=monitor)
        finally:
            await live.aclose()

    started = time.monotonic()
    if protocol == "http":
        import uvloop

        result = uvloop.run(load())
    else:
        result = asyncio.run(load())
    stopped = time.monotonic()
    accepted = result.accepted_votes
    lag_at_end = accepted - (int(counters.get(rc.TOTAL) or 0) - counted_before)
    records = topic_records(topic) - records_before
    reached = wait_for_count(lambda: int(counters.get(rc.TOTAL) or 0) - counted_before, records, drain_timeout_s)
    drained_at = time.monotonic()
    time.sleep(0.3)
    counted = int(counters.get(rc.TOTAL) or 0) - counted_before
    counters.close()
    window_open, window_close = started + warmup_s, started + warmup_s + duration_s
    persisted = _at(bound.samples, window_close, 2) - _at(bound.samples, window_open, 2)
    accepted_per_s = result.window_votes / duration_s
    persisted_per_s = persisted / duration_s
    summary = result.summary()
    return summary | {
        "votes_per_s": round(min(accepted_per_s, persisted_per_s), 1),
        "accepted_per_s": round(accepted_per_s, 1),
        "persisted_per_s": round(persisted_per_s, 1),
        "offered_rate_end": round(bound.rate, 1) if controlled else None,
        "lag_at_end": lag_at_end,
        "drain_s": round(drained_at - stopped, 2) if reached >= records else None,
        "kafka_records": records, "counted": counted, "concurrency": concurrency,
        "protocol": protocol, "load": "lag-bounded" if controlled else "closed loop",
        "reconciled": accepted == records == counted,
        "reconciliation": f"accepted {accepted} == records in Kafka {records} == counted {counted}",
        "timeline": [(round(t - started, 2), a, c, round(r, 1)) for t, a, c, r in bound.samples[::2]],
    }
