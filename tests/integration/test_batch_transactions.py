"""A batch is all or nothing in Kafka, against the real broker, Redis and FerretDB (no Ray).

The failure is real and made at the producer boundary: a real producer sends one record of the
batch to a partition the topic does not have, so librdkafka refuses that record while the
batch's other records reach their partitions (docs/decisions/0023-transactional-batches.md).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from pymongo import MongoClient

from devkit.kafka import LagReader, read_all
from devkit.waiting import wait_until
from serve_app.domain.votes import Vote, VoteRecord, accept
from serve_app.ingress.batch_producer import TransactionalBatches
from serve_app.ingress.producer import KafkaUnavailable
from serve_app.pool.clients import build_consume_loop
from serve_app.pool.consume_loop import ConsumeLoop
from serve_app.settings import Settings
from serve_app.stores import redis_counts
from tests.conftest import TEST_REDIS_DB

pytestmark = pytest.mark.integration

REDIS_DB = TEST_REDIS_DB + 2  # test_pipeline_parts.py uses + 1
PARTITIONS = 6
ABSENT_PARTITION = 99


@pytest.fixture
def settings(stack: Any) -> Iterator[Settings]:
    """A fresh topic (6 partitions), group, Redis database and Mongo database for each test."""
    suffix = uuid.uuid4().hex[:8]
    topic = f"votes-txn-{suffix}"
    admin = AdminClient({"bootstrap.servers": "127.0.0.1:9092"})
    for future in admin.create_topics(
        [
            NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1),
            NewTopic(topic + ".dlq", num_partitions=1, replication_factor=1),
        ]
    ).values():
        future.result(timeout=30)
    redis.Redis(db=REDIS_DB).flushdb()
    yield Settings(
        kafka_topic=topic,
        kafka_dlq_topic=topic + ".dlq",
        kafka_consumer_group=f"txn-{suffix}",
        redis_url=f"redis://127.0.0.1:6379/{REDIS_DB}",
        mongo_database=f"votes_txn_{suffix}",
    )
    redis.Redis(db=REDIS_DB).flushdb()
    MongoClient("mongodb://127.0.0.1:27017/").drop_database(f"votes_txn_{suffix}")
    for future in admin.delete_topics([topic, topic + ".dlq"]).values():
        future.result(timeout=30)


class RefusingProducer(Producer):
    """A real producer that sends the records whose key is in `refused` to a partition the topic
    lacks: Kafka takes the batch's other records, that one fails (unknown partition)."""

    refused: frozenset[bytes] = frozenset()

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("key") in self.refused:
            kwargs["partition"] = ABSENT_PARTITION
        super().produce(topic, *args, **kwargs)


def refusing(keys: set[str]) -> Any:
    def make(config: dict[str, Any]) -> Producer:
        producer = RefusingProducer(config)
        producer.refused = frozenset(key.encode() for key in keys)
        return producer

    return make


def batch(band: str, size: int) -> list[VoteRecord]:
    """A batch as a client sends it without vote_ids: the server makes them (accept)."""
    return [accept(Vote(name=band, album="Pan", year=2012, rank=1), "http") for _ in range(size)]


def run_in_thread(loop: ConsumeLoop) -> threading.Thread:
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    return thread


def drained(loop: ConsumeLoop) -> bool:
    """Every partition assigned and the lag the autoscaler is sent is 0 on each of them."""
    return len(loop.stats.lag) == PARTITIONS and loop.stats.total_lag == 0


def counted_by_band() -> dict[str, str]:
    return redis.Redis(db=REDIS_DB, decode_responses=True).hgetall(redis_counts.BY_BAND)


def test_a_batch_with_a_refused_record_leaves_nothing_visible_or_counted(
    settings: Settings,
) -> None:
    refused_batch = batch("Refused Banda", 30)
    accepted_batch = batch("Accepted Banda", 30)
    batches = TransactionalBatches(settings, 1, refusing({refused_batch[7].vote_id}))

    async def send_both() -> None:
        with pytest.raises(KafkaUnavailable):
            await batches.send(refused_batch)
        await batches.send(accepted_batch)  # the same producer, after its abort

    try:
        asyncio.run(send_both())
    finally:
        batches.close()

    visible = [message.key().decode() for message in read_all(settings.kafka_topic)]
    assert sorted(visible) == sorted(record.vote_id for record in accepted_batch)

    loop = build_consume_loop(settings)
    thread = run_in_thread(loop)
    try:
        wait_until(
            lambda: loop.stats.counted == 30 and drained(loop),
            60,
            f"the accepted batch counted, the pool at the end ({loop.stats})",
        )
    finally:
        loop.stop()
        thread.join(15)
    assert counted_by_band() == {"Accepted Banda": "30"}
    assert redis.Redis(db=REDIS_DB).get(redis_counts.TOTAL) == b"30"


def test_the_pools_lag_reaches_zero_past_transaction_markers(settings: Settings) -> None:
    # Committed and aborted transactions leave markers (offsets with no record to read) at the end
    # of every partition they wrote to: the lag the autoscaler sees and the committed offsets
    # must still come to the end.
    aborted = batch("Aborted Banda", 12)
    batches = TransactionalBatches(settings, 2, refusing({aborted[0].vote_id}))

    async def send_all() -> None:
        await asyncio.gather(*(batches.send(batch("Committed Banda", 50)) for _ in range(4)))
        with pytest.raises(KafkaUnavailable):
            await batches.send(aborted)

    try:
        asyncio.run(send_all())
    finally:
        batches.close()

    loop = build_consume_loop(settings)
    thread = run_in_thread(loop)
    lag_reader = LagReader(settings.kafka_topic, settings.kafka_consumer_group)
    try:
        wait_until(
            lambda: loop.stats.counted == 200 and drained(loop),
            60,
            f"200 votes counted and no lag ({loop.stats})",
        )
        # The group's committed offsets too: the pool re-commits its positions when idle.
        wait_until(lambda: lag_reader.lag() == 0, 30, "the group's committed lag at 0")
    finally:
        lag_reader.close()
        loop.stop()
        thread.join(15)
    assert counted_by_band() == {"Committed Banda": "200"}
