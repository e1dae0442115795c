"""`system_single`, `system_batch`: the whole system (ingress + pool) at the most it sustains.

One repeat: votes go in through the full app (`make run`'s build, pool running) for a warm-up and
a sustained window, then the load stops and the pool drains. The load is lag-bounded: a
controller (`LagBound`) steers the offered rate every 0.5 s from the pool's lag, i.e. votes
accepted (acked by Kafka) minus votes counted in Redis, against a target of 1 s of the pool's
work. Below the target the pool keeps up, so it probes upwards: up to 25% a tick at no lag, less
the closer the lag is to the target. Above it, it offers what the pool persisted over the last
2 s minus the excess spread over 4 s, so the lag comes back to where the pool clears it in about
a second. The warm-up is where it finds that rate; the window measures it.

(An earlier version offered what the pool persisted plus the lag's shortfall in every tick. When
the pool kept up, what it persisted was what was offered, so the rate crept up by a few hundred
votes/s a tick and a 28 s run ended far below the pool's capacity.)

Reported per repeat: votes/s accepted and votes/s persisted in the window (the sustained rate is
the lower of the two), the lag when the load stops, the time the pool then takes to count every
record (the target: 5 s), and the reconciliation accepted == records in Kafka == counted.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from bench.harness import loadgen
from bench.harness.env import REDIS_HOST, REDIS_PORT
from bench.harness.payloads import Bodies, GrpcMessages
from bench.harness.plan import suffix_of
from bench.harness.stores import wait_for_count
from bench.scenarios import e2e
from devkit.kafka import readable_records
from serve_app.stores import redis_counts as rc

if TYPE_CHECKING:
    from bench.harness.runner import Bench
    from bench.harness.serve_instance import ServeInstance

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

    def decide(
        self, rate: float, lag: float, offered_rate: float, sent_rate: float, persisted_rate: float
    ) -> float:
        """The next offered rate (votes/s), from the current one and the last 2 s: what was
        offered, what the servers accepted and what the pool persisted in them (votes/s).

        At or below the target lag the pool keeps up: grow by up to `step_up` (all of it at no
        lag, none at the target). Above it: what the pool persists minus the excess lag spread
        over `correction_s`, never more than now and at most halved a tick (a pause of the pool
        is not its rate). When the servers took under 85% of what was offered, they are what
        limits: at most 1.5 times what they took. Never under `min_rate`.
        """
        target = max(self.min_lag, self.target_lag_s * persisted_rate)
        if lag <= target:
            wanted = rate * (1.0 + (self.step_up - 1.0) * (1.0 - max(0.0, lag) / target))
        else:
            wanted = max(rate * 0.5, min(rate, persisted_rate - (lag - target) / self.correction_s))
        if sent_rate < 0.85 * offered_rate:
            wanted = min(wanted, sent_rate * 1.5)
        return max(self.min_rate, wanted)

    async def run(
        self, counted: Any, counted_before: int, result: loadgen.LoadResult, _window: loadgen.Window
    ) -> None:
        self.samples.append(
            (time.monotonic(), 0, 0, self.rate)
        )  # the start: nothing sent, nothing counted
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            total = int(await counted.get(rc.TOTAL) or 0) - counted_before
            accepted = result.accepted_votes
            rate = self.rate
            self.samples.append((now, accepted, total, rate))
            # Both rates over the last 2 s: a batch run accepts a few 1,000-vote requests a tick.
            window = self.samples[max(0, len(self.samples) - 1 - self.rate_window_ticks) :]
            first = window[0]
            span = max(TICK_S, now - first[0])
            offered_rate = sum(sample[3] for sample in window[:-1]) / max(1, len(window) - 1)
            sent_rate = (accepted - first[1]) / span
            persisted_rate = (total - first[2]) / span
            if self.steer:
                self.set_rate(
                    self.decide(rate, accepted - total, offered_rate, sent_rate, persisted_rate)
                )


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


def system_run(
    *,
    protocol: str,
    kind: str,
    topic: str,
    redis_db: int,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    start_rate: float,
    min_rate: float,
    run_tag: str,
    drain_timeout_s: float,
    http: tuple[str, int] | None = None,
    grpc_target: str | None = None,
    controlled: bool = True,
) -> dict[str, Any]:
    """One repeat (see the module docstring). `controlled=False`: closed loop at `concurrency`."""
    import redis.asyncio as aioredis

    counters = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db)
    counted_before = int(counters.get(rc.TOTAL) or 0)
    records_before = readable_records(topic)
    source = Bodies(kind, run_tag) if protocol == "http" else GrpcMessages(kind, run_tag)
    pacer = loadgen.Pacer(start_rate / source.votes if controlled else None, max_backlog_s=0.2)
    # A lag target of at least 5 requests' worth: batches arrive and are counted 1000 at a time.
    bound = LagBound(
        pacer,
        min_rate=min_rate,
        votes_per_request=source.votes,
        min_lag=max(200.0, 5.0 * source.votes),
        steer=controlled,
    )

    async def load() -> loadgen.LoadResult:
        live = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db)

        async def monitor(result: loadgen.LoadResult, window: loadgen.Window) -> None:
            await bound.run(live, counted_before, result, window)

        try:
            if isinstance(source, Bodies):
                assert http is not None
                path = "/votes/batch" if kind == "batch" else "/votes"
                return await loadgen.http_load(
                    http[0],
                    http[1],
                    path,
                    source,
                    concurrency=concurrency,
                    warmup_s=warmup_s,
                    duration_s=duration_s,
                    pacer=pacer,
                    monitor=monitor,
                )
            assert grpc_target is not None
            return await loadgen.grpc_load(
                grpc_target,
                source,
                concurrency=concurrency,
                warmup_s=warmup_s,
                duration_s=duration_s,
                pacer=pacer,
                monitor=monitor,
            )
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
    records = readable_records(topic) - records_before
    reached = wait_for_count(
        lambda: int(counters.get(rc.TOTAL) or 0) - counted_before, records, drain_timeout_s
    )
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
        "kafka_records": records,
        "counted": counted,
        "concurrency": concurrency,
        "protocol": protocol,
        "load": "lag-bounded" if controlled else "closed loop",
        "reconciled": accepted == records == counted,
        "reconciliation": f"accepted {accepted} == records in Kafka {records} == counted {counted}",
        "timeline": [
            (round(t - started, 2), a, c, round(r, 1)) for t, a, c, r in bound.samples[::2]
        ],
    }


# ---- the group ---------------------------------------------------------------------------------


def measure(bench: Bench, chosen: list[str], mode: str, with_e2e: bool) -> None:
    """system_* and e2e_latency on an app of their own: the closed-loop batches of serve_whole
    leave the pool scaled out for minutes, and these measure the app from its configured start."""
    with bench.serving("system", mode, None) as (instance, topic, _startup_s):
        for kind in ("single", "batch"):
            if f"system_{kind}" in chosen:
                system(bench, instance, topic, kind, mode)
        if "e2e_latency" in chosen and with_e2e:
            e2e.measure(bench, instance, topic)


def system_protocol(bench: Bench, kind: str, suffix: str) -> str:
    """--system-protocol, or auto: the protocol whose ingest-only rate was higher in this run."""
    if bench.args.system_protocol != "auto":
        return str(bench.args.system_protocol)
    rates = {
        p: (bench.find(f"serve_{p}_{kind}_ingest{suffix}") or {}).get("votes_per_s") or 0.0
        for p in ("http", "grpc")
    }
    return "grpc" if rates["grpc"] > rates["http"] else "http"


def system(bench: Bench, instance: ServeInstance, topic: str, kind: str, mode: str) -> None:
    suffix = suffix_of(mode)
    name = f"system_{kind}{suffix}"
    protocol = system_protocol(bench, kind, suffix)
    ingest = (bench.find(f"serve_{protocol}_{kind}_ingest{suffix}") or {}).get("votes_per_s")
    # Start where the ingress alone could go at half speed; the controller takes it from there.
    bench.system_rates[name] = 0.5 * ingest if ingest else (3000.0 if kind == "batch" else 300.0)
    min_rate = 1000.0 if kind == "batch" else 20.0
    plan = bench.plan

    def one() -> dict[str, Any]:
        result = system_run(
            protocol=protocol,
            kind=kind,
            topic=topic,
            redis_db=bench.args.redis_db,
            concurrency=plan.batch_concurrency if kind == "batch" else plan.concurrency,
            warmup_s=plan.system_warmup_s,
            duration_s=plan.system_duration_s,
            start_rate=max(min_rate, bench.system_rates[name]),
            min_rate=min_rate,
            run_tag=f"{bench.names.run_id}s{time.monotonic_ns() % 10**8}",
            drain_timeout_s=plan.drain_timeout_s,
            http=("127.0.0.1", instance.http_port),
            grpc_target=instance.grpc_target,
            controlled=bench.args.system_load == "lag-bounded",
        )
        if result.get("offered_rate_end"):
            bench.system_rates[name] = result["offered_rate_end"]
        return result

    bench.record(
        name,
        bench.repeat(name, one),
        path=protocol,
        kind=kind,
        mode=mode,
        load=bench.args.system_load,
        serve_env=instance.env_applied,
        note="votes_per_s: the lower of votes/s accepted and votes/s persisted in the window",
    )
