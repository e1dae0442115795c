"""What the stores hold before and after the soak, the exact reconciliation of the two, and the
wait for the pool to drain."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from loadtest.soak_log import log
from loadtest.soak_target import Target


@dataclass
class Counts:
    kafka_records: int
    dlq_records: int
    redis_total: int
    mongo_documents: int
    results_total: int | None


class Stores:
    def __init__(self, target: Target) -> None:
        import httpx
        import redis
        from pymongo import MongoClient

        self.target = target
        self.redis = redis.Redis.from_url(target.redis_url)
        self.mongo: Any = MongoClient(target.mongo_url, serverSelectionTimeoutMS=10_000)
        self.http = httpx.Client(base_url=target.http_url, timeout=10)

    def redis_total(self) -> int:
        from serve_app.stores.redis_counts import TOTAL

        return int(self.redis.get(TOTAL) or 0)

    def dlq_records(self) -> int:
        from devkit.kafka import topic_records  # the DLQ producer is not transactional

        return topic_records(self.target.dlq_topic)

    def counts(self) -> Counts:
        # What a read_committed reader gets: batches are Kafka transactions, whose commit markers
        # take offsets that a high watermark would count as records.
        from devkit.kafka import readable_records
        from serve_app.stores.mongo_log import COLLECTION

        results = None
        with contextlib.suppress(Exception):
            response = self.http.get("/results")
            if response.status_code == 200:
                results = int(response.json()["total"])
        return Counts(
            kafka_records=readable_records(self.target.topic),
            dlq_records=self.dlq_records(),
            redis_total=self.redis_total(),
            mongo_documents=int(
                self.mongo[self.target.mongo_database][COLLECTION].count_documents({})
            ),
            results_total=results,
        )

    def diagnose(self, window: tuple[float, float]) -> dict[str, Any]:
        """Where the vote log's documents came from: by source, and how many were received
        outside the load's window (someone else voting, or votes from before)."""
        from datetime import UTC, datetime

        from serve_app.stores.mongo_log import COLLECTION

        votes = self.mongo[self.target.mongo_database][COLLECTION]
        start, end = (datetime.fromtimestamp(t, UTC) for t in window)
        return {
            "by_source": {
                str(source): votes.count_documents({"source": source})
                for source in votes.distinct("source")
            },
            "received_before_load": votes.count_documents({"received_at": {"$lt": start}}),
            "received_after_load": votes.count_documents({"received_at": {"$gt": end}}),
        }

    def close(self) -> None:
        self.redis.close()
        self.mongo.close()
        self.http.close()


@dataclass
class Reconciliation:
    accepted: int
    kafka: int
    redis: int
    mongo: int
    results: int | None
    dlq: int
    poison_sent: int

    @property
    def exact(self) -> bool:
        return (
            self.kafka == self.redis == self.mongo == self.accepted
            and self.results in (None, self.accepted)
            and self.dlq == self.poison_sent
        )

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__ | {"exact": self.exact}


def reconcile(accepted: int, before: Counts, after: Counts, poison_sent: int) -> Reconciliation:
    """Increases of each store over the soak; the probes' poison records are in Kafka (and the
    DLQ) but, undecodable, never in Redis or MongoDB."""
    results = (
        None
        if before.results_total is None or after.results_total is None
        else after.results_total - before.results_total
    )
    return Reconciliation(
        accepted=accepted,
        kafka=after.kafka_records - before.kafka_records - poison_sent,
        redis=after.redis_total - before.redis_total,
        mongo=after.mongo_documents - before.mongo_documents,
        results=results,
        dlq=after.dlq_records - before.dlq_records,
        poison_sent=poison_sent,
    )


def wait_drained(
    stores: Stores,
    before: Counts,
    accepted: int,
    poison: int,
    timeout_s: float,
    stall_s: float = 60,
) -> tuple[Counts, float]:
    """Poll until Redis and the DLQ reached what the load and probes put in (bounded); then
    count everything once. The pool stores a batch in MongoDB before it counts it in Redis, so
    Redis is the drain signal; MongoDB's count over the whole log takes many seconds on FerretDB
    and would be measured as drain time. The exact reconciliation afterwards checks MongoDB."""
    started = time.monotonic()
    last, last_change = None, started
    while time.monotonic() - started < timeout_s:
        state = stores.redis_total(), stores.dlq_records()
        if state[0] - before.redis_total >= accepted and state[1] - before.dlq_records >= poison:
            break
        if state != last:
            last, last_change = state, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            log(f"no progress for {stall_s:.0f}s while draining: giving up")
            break
        time.sleep(0.5)
    drained_s = time.monotonic() - started
    return stores.counts(), drained_s
