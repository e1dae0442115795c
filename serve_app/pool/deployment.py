"""The consumer pool: each replica of `VotePersister` is a Ray actor running one Kafka consumer.

The loop of one consumer (all in `BatchPersister`, on a thread of its own because poll blocks):

    consume a batch (bounded by size and time)
      -> decode each record; undecodable ones go to the dead-letter topic with the reason
      -> MongoDB: insert the votes by vote_id (a duplicate is "already stored")
      -> Redis: one Lua script applies the counts and the partitions' offsets atomically
      -> commit the offsets to Kafka
    any store failing: retry the same batch with backoff, commit nothing, never skip

A crash anywhere before the commit makes Kafka redeliver the batch, and `serve_app.domain.counting`
explains why a redelivered record changes nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from pymongo import MongoClient
from pymongo.errors import PyMongoError
from ray import serve

from serve_app.domain.counting import Delivered, counter_updates
from serve_app.domain.votes import RecordError, decode_record
from serve_app.kafka_errors import KafkaErrorLog
from serve_app.metrics import PersistMetrics
from serve_app.settings import Settings
from serve_app.stores.mongo_log import COLLECTION, MongoVoteLog, ensure_indexes
from serve_app.stores.redis_counts import RedisCounts

# Under "ray.serve": Serve writes these to the replica logs shown in the Ray dashboard.
log = logging.getLogger("ray.serve").getChild(__name__)

T = TypeVar("T")

BATCH_MAX_RECORDS = 1000
BATCH_MAX_WAIT_S = 0.1
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
LAG_REFRESH_S = 1.0
# librdkafka reports the consumer's group membership in its statistics this often.
GROUP_STATS_INTERVAL_MS = 5000
# A consumer whose group membership has not been "up, steady" for this long is replaced. After a
# broker restart librdkafka's consumer was seen to lose its session and then queue every request
# to the group coordinator without ever sending it ("GroupCoordinator: Timed out 0 in-flight,
# 0 retry-queued, 1 out-queue", every minute), leaving its partitions unconsumed for good, while a
# new consumer joined at once. Rebalances take seconds; a minute is never a healthy one.
GROUP_STUCK_S = 60.0
DLQ_MAX_VALUE_BYTES = 512 * 1024


def consumer_config(settings: Settings) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": settings.kafka_consumer_group,
        "client.id": "votes-persister",
        # Offsets are committed by hand, only after both stores have the batch.
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        # A killed replica's partitions move to the others within seconds, not the default 45 s.
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1500,
        # A store outage can hold a batch for long; leaving the group then only moves the work.
        "max.poll.interval.ms": 300_000,
        # Bounds what librdkafka prefetches while a slow store holds the loop (default 64 MiB).
        "queued.max.messages.kbytes": 8192,
        # The group state in these statistics feeds GroupWatch.
        "statistics.interval.ms": GROUP_STATS_INTERVAL_MS,
    }


class GroupWatch:
    """Says when a consumer's group membership has not been healthy for too long.

    Fed with librdkafka's statistics (JSON; `cgrp.state` "up" and `cgrp.join_state` "steady" is a
    member that has its assignment, even an empty one). No statistics at all count as unhealthy.
    """

    def __init__(self, now: float, stuck_after_s: float = GROUP_STUCK_S) -> None:
        self.stuck_after_s = stuck_after_s
        self.healthy_at = now  # a new consumer gets the full grace period to join
        self.state = "starting"

    def update(self, statistics_json: str, now: float) -> None:
        try:
            group = json.loads(statistics_json).get("cgrp") or {}
        except (ValueError, AttributeError):
            return
        self.state = f"{group.get('state', '?')}/{group.get('join_state', '?')}"
        if group.get("state") == "up" and group.get("join_state") == "steady":
            self.healthy_at = now

    def stuck_for(self, now: float) -> float | None:
        """Seconds without a healthy membership, once that exceeds the limit; else None."""
        unhealthy_s = now - self.healthy_at
        return unhealthy_s if unhealthy_s > self.stuck_after_s else None


@dataclass
class PersisterStats:
    """What one consumer did so far; read by metrics, health and the autoscaling policy."""

    batches: int = 0
    persisted: int = 0  # records stored (including clients' duplicates, excluding DLQ)
    counted: int = 0
    dead_lettered: int = 0
    store_failures: int = 0
    last_error: str | None = None
    assigned: list[int] = field(default_factory=list)
    lag: dict[int, int] = field(default_factory=dict)  # partition -> records behind
    consumers_replaced: int = 0  # by GroupWatch

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())


class BatchPersister:
    """One Kafka consumer and its stores. Runs without Ray, so tests can drive it directly."""

    def __init__(self, settings: Settings, metrics: PersistMetrics | None = None) -> None:
        self._settings = settings
        self._metrics = metrics or PersistMetrics()
        self._topic = settings.kafka_topic
        self._group_watch = GroupWatch(time.monotonic())
        self._consumer = self._new_consumer()
        self._dlq = Producer({
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "client.id": "votes-dlq",
            "acks": "all",
            "enable.idempotence": True,
            "error_cb": KafkaErrorLog("dead-letter producer"),
        })
        timeout = settings.persist_timeout_s
        self._redis = redis.Redis.from_url(
            settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._mongo: MongoClient[dict[str, Any]] = MongoClient(
            settings.mongo_url,
            serverSelectionTimeoutMS=int(timeout * 1000),
            connectTimeoutMS=int(timeout * 1000),
            socketTimeoutMS=int(timeout * 1000),
        )
        collection = self._mongo[settings.mongo_database][COLLECTION]
        self._counts = RedisCounts(self._redis)
        self._log = MongoVoteLog(collection)
        self._indexes_ready = False
        self._collection = collection
        self.stats = PersisterStats()
        self._stop = threading.Event()
        self._lag_updated_at = 0.0

    # ---- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        """Consume until stop() is called, then leave the group cleanly."""
        self._subscribe()
        try:
            while not self._stop.is_set():
                messages = self._consumer.consume(BATCH_MAX_RECORDS, BATCH_MAX_WAIT_S)
                if messages:
                    self.process(messages)
                now = time.monotonic()
                if now - self._lag_updated_at >= LAG_REFRESH_S:
                    self._update_lag()
                if (stuck_s := self._group_watch.stuck_for(now)) is not None:
                    self._replace_consumer(stuck_s)
        finally:
            self._consumer.close()  # commits nothing (auto commit is off); leaves the group
            self._dlq.flush(5)

    def stop(self) -> None:
        self._stop.set()

    def process(self, messages: Sequence[Message]) -> bool:
        """Persist one batch and commit it. False when stopped before the batch was persisted."""
        started = time.monotonic()
        delivered: list[Delivered] = []
        poison: list[tuple[Message, str]] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", error.str())
                continue
            try:
                record = decode_record(message.value())
            except RecordError as exc:
                poison.append((message, exc.reason))
                continue
            delivered.append(Delivered(record, message.topic(), message.partition(), message.offset()))

        if poison and self._retry("dead-letter", lambda: self._dead_letter(poison)) is None:
            return False
        counted = self._retry("persist", lambda: self.persist(delivered))
        if counted is None:
            return False
        self._commit(messages)
        self._record(delivered, counted, len(poison), time.monotonic() - started)
        return True

    def persist(self, delivered: Sequence[Delivered]) -> int:
        """Vote log first, counters second: the log decides which copy of a vote counts."""
        if not delivered:
            return 0
        if not self._indexes_ready:
            ensure_indexes(self._collection)
            self._indexes_ready = True
        stored = self._log.store(delivered)
        return self._counts.apply(self._topic, counter_updates(delivered, stored))

    # ---- the consumer ------------------------------------------------------------------------

    def _new_consumer(self) -> Consumer:
        watch = self._group_watch
        return Consumer(consumer_config(self._settings) | {
            "error_cb": KafkaErrorLog("consumer"),
            "stats_cb": lambda stats: watch.update(stats, time.monotonic()),
            "on_commit": self._on_commit,
        })

    def _subscribe(self) -> None:
        self._consumer.subscribe(
            [self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def _replace_consumer(self, stuck_s: float) -> None:
        """Leave the broken consumer behind and join the group with a new one.

        Nothing is lost: offsets are committed only after both stores have a batch, so the new
        member (or another replica) resumes from the last commit and the stores' guards make any
        redelivery a no-op.
        """
        log.warning("kafka consumer group membership not healthy for %.0fs (last state %s): "
                    "replacing the consumer", stuck_s, self._group_watch.state)
        broken = self._consumer
        # close() may wait for the unreachable coordinator: not on the consume loop's time.
        threading.Thread(target=_close_quietly, args=(broken,), name="close-stuck-consumer",
                         daemon=True).start()
        self.stats.assigned = []
        self.stats.lag = {}
        self.stats.consumers_replaced += 1
        self._group_watch = GroupWatch(time.monotonic())
        self._consumer = self._new_consumer()
        self._subscribe()

    # ---- helpers -----------------------------------------------------------------------------

    def _retry(self, what: str, action: Callable[[], T]) -> T | None:
        """Run action until it succeeds (returns its value) or stop() is called (returns None)."""
        delay = BACKOFF_FIRST_S
        while True:
            try:
                return action()
            except (redis.RedisError, PyMongoError, KafkaException, OSError) as exc:
                self.stats.store_failures += 1
                self._metrics.store_failures.inc(tags={"step": what})
                self.stats.last_error = f"{what}: {type(exc).__name__}: {exc}"
                log.warning("%s failed, retrying in %.1fs: %s", what, delay, self.stats.last_error)
            if self._stop.wait(delay):
                return None
            delay = min(delay * 2, BACKOFF_MAX_S)

    def _record(self, delivered: Sequence[Delivered], counted: int, dead: int, took_s: float) -> None:
        self.stats.batches += 1
        self.stats.persisted += len(delivered)
        self.stats.counted += counted
        self.stats.dead_lettered += dead
        metrics = self._metrics
        metrics.batch_size.observe(len(delivered) + dead)
        metrics.persist_latency.observe(took_s)
        for amount, counter in ((len(delivered), metrics.persisted), (counted, metrics.counted),
                                (dead, metrics.dead_lettered)):
            if amount:
                counter.inc(amount)
        now = datetime.now(UTC)
        for item in delivered:
            metrics.end_to_end.observe(max(0.0, (now - item.record.received_at).total_seconds()))

    def _update_lag(self) -> None:
        """Lag of the partitions this consumer owns, from cached watermarks (no broker call)."""
        self._lag_updated_at = time.monotonic()
        try:
            assignment = self._consumer.assignment()
            positions = self._consumer.position(assignment) if assignment else []
        except KafkaException:
            return
        lag: dict[int, int] = {}
        for tp in positions:
            try:
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            # Right after a rebalance a new partition has no position until its first fetch.
            # Unknown is not "the whole partition": counting it so made the autoscaler add a
            # replica after every scale event (which moved partitions again).
            if high < 0 or tp.offset < 0:
                continue
            lag[tp.partition] = max(0, high - tp.offset)
        for partition in set(self.stats.lag) - set(lag):
            self._metrics.consumer_lag.set(0, tags={"partition": str(partition)})
        for partition, value in lag.items():
            self._metrics.consumer_lag.set(value, tags={"partition": str(partition)})
        self.stats.lag = lag

    def _dead_letter(self, poison: Sequence[tuple[Message, str]]) -> int:
        """Produce the poison records to the DLQ and wait for the acks; returns how many."""
        failures: list[str] = []

        def report(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error.str())

        for message, reason in poison:
            value = message.value() or b""
            headers = list(message.headers() or []) + [
                ("dlq.reason", reason.encode()),
                ("dlq.topic", message.topic().encode()),
                ("dlq.partition", str(message.partition()).encode()),
                ("dlq.offset", str(message.offset()).encode()),
                ("dlq.original_bytes", str(len(value)).encode()),
            ]
            # A record near the broker's size limit plus our headers could be refused by the
            # DLQ, and a refused poison record would stall its partition: keep a prefix.
            if len(value) > DLQ_MAX_VALUE_BYTES:
                value = value[:DLQ_MAX_VALUE_BYTES]
                headers.append(("dlq.truncated", b"true"))
            self._dlq.produce(
                self._settings.kafka_dlq_topic,
                key=message.key(),
                value=value,
                headers=headers,
                on_delivery=report,
            )
            log.warning("dead-lettered %s[%d]@%d: %s", message.topic(), message.partition(),
                        message.offset(), reason)
        remaining = self._dlq.flush(self._settings.kafka_delivery_timeout_s)
        if remaining or failures:
            raise KafkaException(f"dead-letter topic did not take {remaining or len(failures)} records")
        return len(poison)

    def _commit(self, messages: Sequence[Message]) -> None:
        next_offsets: dict[tuple[str, int], int] = {}
        for message in messages:
            if message.error() is None:
                key = (message.topic(), message.partition())
                next_offsets[key] = max(next_offsets.get(key, 0), message.offset() + 1)
        if not next_offsets:
            return
        try:
            # Asynchronous: a synchronous commit waits for the group coordinator with no time
            # limit, and after a broker restart a consumer that had lost its coordinator waited
            # there for good (the loop, and GroupWatch in it, never ran again). The outcome
            # reaches _on_commit during a later consume(); a commit that fails or never lands
            # only means redelivery, which the stores' guards make a no-op.
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in next_offsets.items()],
                asynchronous=True,
            )
        except KafkaException as exc:
            # The partition moved during the batch: its new owner gets the records again, and
            # the stores' guards make that a no-op. Nothing to undo here.
            log.warning("offset commit failed (records will be redelivered): %s", exc)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        failed = [p for p in partitions if p.error is not None]
        if error is not None or failed:
            reason = error.str() if error is not None else failed[0].error.str()
            log.warning("offset commit failed (records will be redelivered): %s", reason)

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.stats.assigned = sorted(set(self.stats.assigned) | {p.partition for p in partitions})
        log.info("assigned partitions %s", [p.partition for p in partitions])

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {p.partition for p in partitions}
        self.stats.assigned = [p for p in self.stats.assigned if p not in revoked]
        log.info("revoked partitions %s", sorted(revoked))


def _close_quietly(consumer: Consumer) -> None:
    try:
        consumer.close()
    except (KafkaException, RuntimeError) as exc:
        log.info("closing the replaced consumer: %s", exc)


@serve.deployment(name="VotePersister")
class VotePersister:
    """A Serve replica that runs a BatchPersister on a background thread.

    Serve starts, health-checks and restarts the replicas; a dead consume thread fails the health
    check, so Serve replaces the replica. Requests are not part of the work: the pool pulls from
    Kafka. `stats()` answers what this replica has done.
    """

    def __init__(self, settings: Settings) -> None:
        self._persister = BatchPersister(settings)
        self._thread = threading.Thread(
            target=self._persister.run, name="vote-persister", daemon=True
        )
        self._thread.start()

    def check_health(self) -> None:
        if not self._thread.is_alive():
            raise RuntimeError("the consume loop has stopped")

    def stats(self) -> dict[str, Any]:
        stats = self._persister.stats
        return vars(stats) | {"running": self._thread.is_alive(), "total_lag": stats.total_lag}

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Custom autoscaling metrics for `serve_app.pool.lag_policy` (Serve calls this periodically)."""
        stats = self._persister.stats
        return {"lag": float(stats.total_lag), "partitions": float(len(stats.assigned))}

    def __del__(self) -> None:
        # Graceful shutdown: finish or abandon the batch in flight, leave the group.
        persister = getattr(self, "_persister", None)
        if persister is not None:
            persister.stop()
            self._thread.join(timeout=10)
