"""Raw sinks: Kafka's producer, FerretDB's insert_many and Redis's counter script, each alone.

`measure` runs the group's scenarios; each other function runs one timed repeat and returns a
dict for the report (votes_per_s, p50_ms, p99_ms, errors, accepted, reconciled and what the
reconciliation compared).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bench.harness.cpu import cpu_delta, cpu_of, stack_pids
from bench.harness.env import MONGO_URL, REDIS_HOST, REDIS_PORT
from bench.harness.stats import percentile
from bench.harness.stores import drop_mongo_database
from devkit.kafka import KAFKA, topic_records
from loadtest.traffic import Traffic
from serve_app.domain.counting import Delivered, counter_updates
from serve_app.domain.votes import Vote, accept, encode_record
from serve_app.ingress.producer import producer_config
from serve_app.settings import load_settings
from serve_app.stores.mongo_log import vote_document

if TYPE_CHECKING:
    from bench.harness.runner import Bench


def vote_records(count: int, seed: int = 11, source: str = "http") -> list[Any]:
    traffic = Traffic(seed)
    now = datetime.now(UTC)
    return [accept(Vote.model_validate(traffic.vote()), source, now) for _ in range(count)]  # type: ignore[arg-type]


def _rounded(values: list[float]) -> tuple[float | None, float | None]:
    p50, p99 = percentile(values, 50), percentile(values, 99)
    return (None if p50 is None else round(p50, 2), None if p99 is None else round(p99, 2))


@dataclass
class BatchRun:
    """What `run_batches` saw: every batch, and the ones that finished in the measured window."""

    handled: int = 0  # votes of every successful batch, warm-up included
    errors: int = 0
    in_window: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)  # the stack's CPU over the window

    def summary(self, duration_s: float) -> dict[str, Any]:
        p50, p99 = _rounded(self.latencies_ms)
        return {
            "votes_per_s": round(self.in_window / duration_s, 1),
            "p50_ms": p50,
            "p99_ms": p99,
            "errors": self.errors,
            "cpu_window": {"votes": self.in_window, "cpu_s": self.cpu_s},
        }


def run_batches(
    step: Callable[[], int],
    warmup_s: float,
    duration_s: float,
    failures: tuple[type[BaseException], ...],
    extra_cpu: Callable[[], dict[str, float]] | None = None,
) -> BatchRun:
    """Call `step` (one batch; returns the votes it handled) back to back for warm-up + duration.

    A `failures` exception counts as an error and the loop goes on. Only batches that finish
    inside the measured window count towards the rate and the latencies; a latency is one whole
    step, building the batch included (1-3 ms of the ~100 ms a store takes per 1000 votes).
    `extra_cpu`: CPU seconds so far of processes outside the stack, measured in the same window.
    """
    run = BatchRun()
    stack = stack_pids()

    def cpu_now() -> dict[str, float]:
        return cpu_of(stack) | (extra_cpu() if extra_cpu else {})

    cpu_open: dict[str, float] = {}
    start = time.monotonic()
    opens, closes = start + warmup_s, start + warmup_s + duration_s
    while time.monotonic() < closes:
        if not cpu_open and time.monotonic() >= opens:
            cpu_open = cpu_now()
        began = time.monotonic()
        try:
            handled = step()
        except failures:
            run.errors += 1
            continue
        done = time.monotonic()
        run.handled += handled
        if opens <= done < closes:
            run.in_window += handled
            run.latencies_ms.append((done - began) * 1000)
    run.cpu_s = cpu_delta(cpu_open, cpu_now()) if cpu_open else {}
    return run


# ---- Kafka -----------------------------------------------------------------------------------


def kafka_producer_raw(
    topic: str, warmup_s: float, duration_s: float, pool: int = 4096
) -> dict[str, Any]:
    """One process producing vote records as fast as the broker acknowledges them (acks=all).

    The producer is configured exactly like the ingress's (`producer_config`), the records are the
    ingress's encoding of realistic votes, pre-encoded so that only producing is measured.
    Latency: produce() to delivery report, sampled on every 64th record (under saturation that is
    mostly time in the producer's queue).
    """
    from confluent_kafka import Producer

    settings = load_settings({"kafka_topic": topic, "kafka_bootstrap_servers": KAFKA})
    producer = Producer(producer_config(settings) | {"client.id": "bench-raw"})
    messages = [encode_record(r) for r in vote_records(pool)]
    state = {"delivered": 0, "failed": 0}
    latencies: list[float] = []
    window: dict[str, int] = {}

    def count(error: Any, _message: Any) -> None:
        if error is None:
            state["delivered"] += 1
        else:
            state["failed"] += 1

    def timed(sent: float) -> Any:
        def report(error: Any, message: Any) -> None:
            count(error, message)
            if error is None:
                latencies.append((time.monotonic() - sent) * 1000)

        return report

    before = topic_records(topic)
    start = time.monotonic()
    opens, closes = start + warmup_s, start + warmup_s + duration_s
    produced = 0
    while True:
        now = time.monotonic()
        if now >= closes:
            break
        if "open" not in window and now >= opens:
            window["open"] = state["delivered"]
            latencies.clear()
        message = messages[produced % pool]
        try:
            producer.produce(
                topic,
                key=message.key,
                value=message.value,
                headers=message.headers,
                on_delivery=timed(now) if produced % 64 == 0 else count,
            )
            produced += 1
        except BufferError:
            producer.poll(0.005)
            continue
        if produced % 512 == 0:
            producer.poll(0)
    window["close"] = state["delivered"]
    sampled = list(latencies)
    remaining = producer.flush(30)
    records = topic_records(topic) - before
    p50, p99 = _rounded(sampled)
    accepted = state["delivered"]
    return {
        "votes_per_s": round((window["close"] - window.get("open", 0)) / duration_s, 1),
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": state["failed"] + remaining,
        "accepted": accepted,
        "kafka_records": records,
        "reconciled": accepted == records,
        "reconciliation": f"delivery reports {accepted} == records in Kafka {records}",
    }


# ---- FerretDB --------------------------------------------------------------------------------


def ferretdb_raw(
    database: str,
    warmup_s: float,
    duration_s: float,
    batch: int = 1000,
    mongo_url: str = MONGO_URL,
    extra_cpu: Callable[[], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """insert_many of vote documents (the vote log's exact shape), `batch` per call, unordered.

    `mongo_url`, `extra_cpu`: another FerretDB than the stack's, and its CPU so far
    (bench.tools.ferretdb_backends); the database is dropped there.
    """
    from pymongo import MongoClient

    client: Any = MongoClient(mongo_url, serverSelectionTimeoutMS=5000, socketTimeoutMS=120_000)
    collection = client[database]["votes"]
    templates = [
        vote_document(Delivered(r, "bench", i % 6, i), datetime.now(UTC))
        for i, r in enumerate(vote_records(batch))
    ]

    def insert_batch() -> int:
        tag = uuid.uuid4().hex[:12]
        documents = [template | {"_id": f"{tag}-{i}"} for i, template in enumerate(templates)]
        collection.insert_many(documents, ordered=False)
        return len(documents)

    try:
        run = run_batches(
            insert_batch, warmup_s, duration_s, failures=(Exception,), extra_cpu=extra_cpu
        )
        stored = collection.count_documents({})
        if mongo_url != MONGO_URL:
            client.drop_database(database)
    finally:
        client.close()
        if mongo_url == MONGO_URL:
            drop_mongo_database(database)
    return run.summary(duration_s) | {
        "accepted": run.handled,
        "stored": stored,
        "reconciled": stored == run.handled,
        "reconciliation": f"inserted {run.handled} == documents stored {stored}",
        "unit": f"insert_many of {batch} documents",
    }


# ---- Redis -----------------------------------------------------------------------------------


def redis_raw(
    prefix: str, warmup_s: float, duration_s: float, batch: int = 1000, db: int = 0
) -> dict[str, Any]:
    """The pool's counter Lua script (APPLY_BATCH_LUA) on batches of `batch` votes.

    Same script, same arguments as `RedisCounts.apply`, but on keys under `prefix`, so it can
    run next to anything (a test session's counters included) without touching them.
    """

    import redis

    from serve_app.stores import redis_counts as rc

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    keys = [prefix + key for key in rc.ALL_KEYS]
    script = client.register_script(rc.APPLY_BATCH_LUA)
    records = vote_records(batch)
    offsets = itertools.count(0, batch)

    def apply_batch() -> int:
        first = next(offsets)
        delivered = [Delivered(r, "bench", 0, first + i) for i, r in enumerate(records)]
        updates = counter_updates(delivered, {d.record.vote_id: d.position for d in delivered})
        return int(script(keys=keys, args=rc.script_args("bench", updates)))

    try:
        run = run_batches(apply_batch, warmup_s, duration_s, failures=(redis.RedisError,))
        total = int(client.get(keys[0]) or 0)
    finally:
        client.delete(*keys)
        client.close()
    return run.summary(duration_s) | {
        "accepted": run.handled,
        "counted": total,
        "reconciled": total == run.handled,
        "reconciliation": f"votes applied {run.handled} == counter total {total}",
        "unit": f"one script call per {batch} votes",
    }


# ---- the group ---------------------------------------------------------------------------------


def measure(bench: Bench, chosen: list[str]) -> None:
    """kafka_producer_raw, ferretdb_raw and redis_raw, as far as chosen."""
    plan = bench.plan
    if "kafka_producer_raw" in chosen:
        topic = bench.new_topic("raw")
        bench.record(
            "kafka_producer_raw",
            bench.repeat(
                "kafka_producer_raw",
                lambda: kafka_producer_raw(topic, plan.warmup_s, plan.duration_s),
            ),
            unit="vote records",
            path="raw",
        )
    if "ferretdb_raw" in chosen:
        bench.record(
            "ferretdb_raw",
            bench.repeat(
                "ferretdb_raw",
                lambda: ferretdb_raw(
                    bench.names.mongo_database_for(f"raw_{time.monotonic_ns() % 10**6}"),
                    min(plan.warmup_s, 1.0),
                    max(2.0, plan.duration_s / 2),
                ),
            ),
            unit="vote documents",
            path="raw",
        )
    if "redis_raw" in chosen:
        # Keys under a per-run prefix, in the benchmark's own database: safe next to anything.
        bench.record(
            "redis_raw",
            bench.repeat(
                "redis_raw",
                lambda: redis_raw(
                    bench.names.redis_prefix("raw"),
                    min(plan.warmup_s, 1.0),
                    max(2.0, plan.duration_s / 2),
                    db=bench.args.persist_redis_db,
                ),
            ),
            unit="votes counted",
            path="raw",
        )
