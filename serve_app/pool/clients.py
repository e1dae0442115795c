"""The one place the pool builds its clients from Settings, and wires a consume loop from them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis
from confluent_kafka import Consumer, KafkaException
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from serve_app.domain.counting import Delivered
from serve_app.kafka_errors import KafkaErrorLog, ReplaceableProducer
from serve_app.metrics import PersistMetrics
from serve_app.pool.commits import log_commit_outcome
from serve_app.pool.consume_loop import ConsumeLoop
from serve_app.pool.dead_letters import KafkaDeadLetters
from serve_app.pool.processor import BatchProcessor
from serve_app.pool.stats import PersisterStats
from serve_app.pool.supervision import GROUP_STATS_INTERVAL_MS, ConsumerSupervisor
from serve_app.settings import MONGO_WRITE_CONCERNS, Settings
from serve_app.stores import clients as stores_clients
from serve_app.stores.mongo_log import COLLECTION, MongoVoteLog, ensure_indexes
from serve_app.stores.redis_counts import RedisCounts

# What these clients raise when their service is down or slow: the processor retries on these.
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    redis.RedisError,
    PyMongoError,
    KafkaException,
    OSError,
)


FETCH_MIN_BYTES = 64 * 1024
FETCH_WAIT_MAX_MS = 25


def consumer_config(settings: Settings) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": settings.kafka_consumer_group,
        "client.id": "votes-persister",
        # Offsets are committed by hand, only after both stores have the batch.
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        # Only committed batches, never a part of an aborted one
        # (docs/decisions/0023-transactional-batches.md).
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
        # A killed replica's partitions move to the others within seconds, not the default 45 s.
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1500,
        # A store outage can hold a batch for long; leaving the group then only moves the work.
        "max.poll.interval.ms": 300_000,
        # Bounds what librdkafka prefetches while a slow store holds the loop (default 64 MiB).
        "queued.max.messages.kbytes": 8192,
        # The broker answers a fetch once 64 KiB are there or 25 ms have passed, not for every
        # vote: larger batches, and at a few hundred votes/s 44% less pool CPU per vote
        # (docs/decisions/0020-pool-batches.md).
        "fetch.min.bytes": FETCH_MIN_BYTES,
        "fetch.wait.max.ms": FETCH_WAIT_MAX_MS,
        # The group state in these statistics feeds GroupWatch.
        "statistics.interval.ms": GROUP_STATS_INTERVAL_MS,
    } | settings.kafka_security_config()


def new_consumer(settings: Settings, on_statistics: Callable[[str], None]) -> Consumer:
    return Consumer(
        consumer_config(settings)
        | {
            "error_cb": KafkaErrorLog("consumer"),
            "stats_cb": on_statistics,
            "on_commit": log_commit_outcome,
        }
    )


def dlq_producer_config(settings: Settings) -> dict[str, Any]:
    return settings.kafka_producer_config("votes-dlq")


def new_dlq_producers(settings: Settings) -> ReplaceableProducer:
    """The DLQ producer, replaced after a fatal error (it would refuse every record after one)."""
    return ReplaceableProducer("dead-letter producer", dlq_producer_config(settings))


def new_redis(settings: Settings) -> redis.Redis:
    """The counters' client, with the pool's timeout."""
    return stores_clients.new_redis(settings.redis_url, settings.persist_timeout_s)


def new_mongo(settings: Settings) -> MongoClient[dict[str, Any]]:
    """The vote log's client; its write concern (`.write_concern`) is the setting's."""
    # An insert is acknowledged once journaled: docs/decisions/0022-vote-log-write-concern.md
    return stores_clients.new_mongo(
        settings.mongo_url,
        settings.persist_timeout_s,
        MONGO_WRITE_CONCERNS[settings.mongo_write_concern],
    )


class IndexedVoteLog:
    """The MongoDB vote log, its indexes created before its first write (and retried with it)."""

    def __init__(self, collection: Collection[Any]) -> None:
        self._collection = collection
        self._log = MongoVoteLog(collection)
        self._indexes_ready = False

    def store(self, batch: Sequence[Delivered]) -> Mapping[str, tuple[int, int]]:
        if not self._indexes_ready:
            ensure_indexes(self._collection)
            self._indexes_ready = True
        return self._log.store(batch)


def build_consume_loop(settings: Settings, metrics: PersistMetrics | None = None) -> ConsumeLoop:
    """A consume loop with its consumer, DLQ producer, Redis and MongoDB clients, not started."""
    metrics = metrics or PersistMetrics()
    stats = PersisterStats()
    stop = threading.Event()
    dead_letters = KafkaDeadLetters(
        new_dlq_producers(settings), settings.kafka_dlq_topic, settings.kafka_delivery_timeout_s
    )
    supervisor = ConsumerSupervisor(
        settings.kafka_topic, lambda on_statistics: new_consumer(settings, on_statistics), stats
    )
    collection = new_mongo(settings)[settings.mongo_database][COLLECTION]
    processor = BatchProcessor(
        settings.kafka_topic,
        IndexedVoteLog(collection),
        RedisCounts(new_redis(settings)),
        dead_letters,
        retryable=RETRYABLE_ERRORS,
        wait=stop.wait,
        stats=stats,
        metrics=metrics,
    )
    return ConsumeLoop(supervisor, processor, dead_letters, stop, metrics)
