"""One repeat of load through a server (a peer, the seed, Serve), reconciled against Kafka."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import redis

from bench.harness import loadgen
from bench.harness.env import REDIS_HOST, REDIS_PORT
from bench.harness.payloads import Bodies, GrpcMessages
from bench.harness.profile import Profiler
from bench.harness.stores import wait_for_count
from devkit.kafka import readable_records
from serve_app.stores import redis_counts as rc

if TYPE_CHECKING:
    from bench.harness.runner import Bench


def ingest(
    bench: Bench,
    name: str,
    *,
    protocol: str,
    kind: str,
    http: tuple[str, int] | None = None,
    grpc_target: str | None = None,
    topic: str | None,
    counter_db: int | None = None,
    path: str | None = None,
) -> dict[str, Any]:
    """One repeat: load, then reconcile against Kafka (and the counters, when given). Without
    a topic (the no-op floor) every request must have been answered with success."""
    plan = bench.plan
    duration = plan.batch_duration_s if kind == "batch" else plan.duration_s
    conc = plan.batch_concurrency if kind == "batch" else plan.concurrency
    counters = (
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=counter_db)
        if counter_db is not None
        else None
    )
    counted_before = int(counters.get(rc.TOTAL) or 0) if counters else 0
    records_before = readable_records(topic) if topic else 0
    tag = f"{bench.names.run_id}{name[:1]}{time.monotonic_ns() % 10**8}"
    # The extra, uncounted repeat of a Serve scenario is profiled (Bench.repeat): py-spy
    # --nonblocking does not pause the sampled process, but its sampling still costs CPU.
    profiler = None
    if bench.profiling:
        profiler = Profiler(
            bench.args.out / "profiles", name, bench.measured_groups[0], plan.warmup_s + duration
        )
    with profiler or contextlib.nullcontext():
        if protocol == "http":
            assert http is not None
            path = path or ("/votes/batch" if kind == "batch" else "/votes")
            result = loadgen.run_http(
                http[0],
                http[1],
                path,
                Bodies(kind, tag),
                concurrency=conc,
                warmup_s=plan.warmup_s,
                duration_s=duration,
            )
        else:
            assert grpc_target is not None
            result = loadgen.run_grpc(
                grpc_target,
                GrpcMessages(kind, tag),
                concurrency=conc,
                warmup_s=plan.warmup_s,
                duration_s=duration,
            )
    summary = result.summary() | {
        "concurrency": conc,
        "accepted_requests": result.accepted_requests,
    }
    if profiler is not None:
        summary["profile"] = profiler.result
    accepted = result.accepted_votes
    if topic is None:
        answered = result.accepted_requests + result.error_count
        summary["reconciled"] = result.error_count == 0 and result.accepted_requests > 0
        summary["reconciliation"] = (
            f"answered with success {result.accepted_requests} of {answered} requests"
        )
        return summary
    records = readable_records(topic) - records_before
    summary["kafka_records"] = records
    reconciled = records == accepted
    text = f"accepted {accepted} == records in Kafka {records}"
    if counters is not None:
        target = counted_before + records
        drain_started = time.monotonic()
        reached = wait_for_count(
            lambda: int(counters.get(rc.TOTAL) or 0), target, plan.drain_timeout_s
        )
        if reached < target:
            summary["pool_stalled"] = True
        time.sleep(0.3)
        counted = int(counters.get(rc.TOTAL) or 0) - counted_before
        summary["counted"] = counted
        summary["drain_s"] = round(time.monotonic() - drain_started, 2)
        reconciled = reconciled and counted == accepted
        text += f" == counted {counted}"
        counters.close()
    summary["reconciled"] = reconciled
    summary["reconciliation"] = text
    return summary
