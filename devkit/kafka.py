"""Kafka for tests, the benchmark and the scripts: make and delete topics, read them back."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

# The local stack's broker (deployments/local); the same variable the app's settings read.
KAFKA = os.environ.get("VOTES_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
PARTITIONS = 6  # as config.yaml's topic has


def create_topics(
    names: Sequence[str], partitions: int = PARTITIONS, bootstrap: str = KAFKA
) -> None:
    """Create the topics and wait until every partition has a leader (bounded: 30 s)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # a collected client fails its futures
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
    )
    for future in futures.values():
        future.result(timeout=30)
    # Metadata propagates asynchronously.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=10)
        if all(
            name in metadata.topics
            and len(metadata.topics[name].partitions) == partitions
            and metadata.topics[name].error is None
            for name in names
        ):
            return
        time.sleep(0.2)
    raise RuntimeError(f"topics {list(names)} not ready within 30 s")


def delete_topics(names: Sequence[str], bootstrap: str = KAFKA) -> None:
    """Delete the topics, best effort: the broker may be restarting, or a topic already gone."""
    if not names:
        return
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(list(names)).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)


def read_all(topic: str, timeout_s: float = 30, bootstrap: str = KAFKA) -> list[Any]:
    """Every record in topic up to its end as of now (bounded in time), via assign, no group."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            # As the pool reads: committed transactions only
            # (docs/decisions/0023-transactional-batches.md).
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        remaining: dict[int, int] = {}
        assignment = []
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                remaining[partition] = high
                assignment.append(TopicPartition(topic, partition, low))
        consumer.assign(assignment)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            records += [m for m in consumer.consume(1000, 0.5) if m.error() is None]
            # The end is the position, not the last record: transaction markers and aborted
            # records take offsets that a read_committed reader is never given.
            for tp in consumer.position([TopicPartition(topic, p) for p in remaining]):
                if tp.offset >= remaining[tp.partition]:
                    remaining.pop(tp.partition)
        assert not remaining, f"could not read {topic} to its end within {timeout_s}s: {remaining}"
        return records
    finally:
        consumer.close()


def topic_records(topic: str) -> int:
    """Offsets ever taken in the topic: the sum of its partitions' high watermarks. Equal to its
    records only for a topic written without transactions: a transaction's commit marker takes an
    offset too (count those with readable_records)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": f"bench-watermarks-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for partition in partitions:
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10
            )
            total += high
        return total
    finally:
        consumer.close()


def readable_records(topic: str, timeout_s: float = 180.0) -> int:
    """Records a read_committed reader gets from the topic, read to its end. Not the high
    watermarks: a batch's Kafka transaction leaves a marker offset in each partition it wrote
    to, and an aborted one records nobody reads (docs/decisions/0023-transactional-batches.md)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": f"bench-reader-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        remaining = {p: end for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in remaining])
        total = 0
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not read {topic} to its end within {timeout_s:.0f}s")
            total += sum(1 for m in consumer.consume(10_000, 0.5) if m.error() is None)
            for tp in consumer.position([TopicPartition(topic, p) for p in remaining]):
                if tp.offset >= remaining[tp.partition]:
                    remaining.pop(tp.partition)
        return total
    finally:
        consumer.close()


class LagReader:
    """A consumer group's lag from Kafka itself: partition ends minus committed offsets.

    The consumer only reads committed offsets; it never subscribes, so it never joins the group.
    """

    def __init__(
        self, topic: str, group: str, partitions: int = PARTITIONS, bootstrap: str = KAFKA
    ) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        self._partitions = [TopicPartition(topic, p) for p in range(partitions)]

    def lag(self) -> int | None:
        """Records the group is behind over all partitions; None when Kafka did not answer."""
        try:
            committed = self._consumer.committed(self._partitions, timeout=5)
            total = 0
            for tp in committed:
                low, high = self._consumer.get_watermark_offsets(tp, timeout=5)
                total += max(0, high - (tp.offset if tp.offset >= 0 else low))
            return total
        except Exception:  # noqa: BLE001 - a missed sample is shown as unknown, not fatal
            return None

    def close(self) -> None:
        self._consumer.close()
