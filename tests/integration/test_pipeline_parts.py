"""The producer and the persister against the real broker, Redis and FerretDB (no Ray, no Serve)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from pymongo import MongoClient

from devkit.kafka import read_all
from devkit.waiting import wait_until
from serve_app.domain.counting import Delivered
from serve_app.domain.votes import Vote, accept, encode_record
from serve_app.ingress.producer import VoteProducer
from serve_app.pool.clients import build_consume_loop, new_dlq_producers
from serve_app.pool.consume_loop import ConsumeLoop
from serve_app.pool.dead_letters import KafkaDeadLetters
from serve_app.pool.ports import Poison
from serve_app.settings import Settings
from serve_app.stores import redis_counts
from tests.conftest import TEST_REDIS_DB
from tests.unit.pool.test_processor import FakeRecord

pytestmark = pytest.mark.integration

# Emptied before and after each test: the database after the session's (VOTES_TEST_REDIS_DB), as
# test_counting_model.py uses, never a fixed number another session may be using.
REDIS_DB = TEST_REDIS_DB + 1


@pytest.fixture
def settings(stack: Any) -> Iterator[Settings]:
    """A fresh topic, group, Redis database and Mongo database for each test."""
    suffix = uuid.uuid4().hex[:8]
    topic = f"votes-it-{suffix}"
    admin = AdminClient({"bootstrap.servers": "127.0.0.1:9092"})
    for future in admin.create_topics(
        [
            NewTopic(topic, num_partitions=3, replication_factor=1),
            NewTopic(topic + ".dlq", num_partitions=1, replication_factor=1),
        ]
    ).values():
        future.result(timeout=30)
    redis.Redis(db=REDIS_DB).flushdb()
    yield Settings(
        kafka_topic=topic,
        kafka_dlq_topic=topic + ".dlq",
        kafka_consumer_group=f"it-{suffix}",
        redis_url=f"redis://127.0.0.1:6379/{REDIS_DB}",
        mongo_database=f"votes_it_{suffix}",
    )
    redis.Redis(db=REDIS_DB).flushdb()
    MongoClient("mongodb://127.0.0.1:27017/").drop_database(f"votes_it_{suffix}")
    for future in admin.delete_topics([topic, topic + ".dlq"]).values():
        future.result(timeout=30)


def make_vote(band: str = "Gaby Moreno", vote_id: str | None = None) -> Vote:
    return Vote(name=band, album="Illustrated Songs", year=2012, rank=2, vote_id=vote_id)


def test_a_produced_record_reads_back_with_key_value_and_headers(settings: Settings) -> None:
    record = accept(make_vote(vote_id="it-1"), "grpc", datetime(2026, 11, 27, tzinfo=UTC))

    async def send() -> None:
        producer = VoteProducer(settings)
        try:
            await producer.send([record])
        finally:
            producer.close()

    asyncio.run(send())
    (message,) = read_all(settings.kafka_topic)
    expected = encode_record(record)
    assert message.key() == b"it-1"
    assert message.value() == expected.value
    assert message.headers() == expected.headers
    assert json.loads(message.value())["received_at"] == "2026-11-27T00:00:00.000Z"


def delivered(
    records: list[Vote], topic: str, partition: int = 0, first_offset: int = 0
) -> list[Delivered]:
    now = datetime.now(UTC)
    return [
        Delivered(accept(vote, "http", now), topic, partition, first_offset + i)
        for i, vote in enumerate(records)
    ]


def counters(db: int = REDIS_DB) -> dict[str, Any]:
    client = redis.Redis(db=db, decode_responses=True)
    return {
        "total": client.get(redis_counts.TOTAL),
        "by_band": client.hgetall(redis_counts.BY_BAND),
        "offsets": client.hgetall(redis_counts.APPLIED_OFFSETS),
    }


def test_a_batch_is_persisted_once_and_a_replay_changes_nothing(settings: Settings) -> None:
    processor = build_consume_loop(settings).processor
    batch = delivered([make_vote("Alux Nahual", f"v{i}") for i in range(50)], settings.kafka_topic)
    assert processor.persist(batch) == 50
    after_first = counters()
    assert after_first["total"] == "50" and after_first["by_band"] == {"Alux Nahual": "50"}
    assert after_first["offsets"] == {f"{settings.kafka_topic}:0": "49"}

    recent = redis.Redis(db=REDIS_DB).lrange(redis_counts.RECENT, 0, -1)
    assert len(recent) == 50 and json.loads(recent[0])["vote_id"] == "v49"
    assert processor.persist(batch) == 0  # the same batch redelivered
    assert processor.persist(batch[10:30]) == 0  # part of it, as after a rebalance
    assert counters() == after_first
    assert redis.Redis(db=REDIS_DB).llen(redis_counts.RECENT) == 50
    log = MongoClient("mongodb://127.0.0.1:27017/")[settings.mongo_database]["votes"]
    assert log.count_documents({}) == 50


def test_a_clients_retry_at_a_new_offset_counts_once(settings: Settings) -> None:
    processor = build_consume_loop(settings).processor
    first = delivered([make_vote("La Tona", "same-id")], settings.kafka_topic, 1, 5)
    retry = delivered([make_vote("La Tona", "same-id")], settings.kafka_topic, 1, 9)
    assert processor.persist(first) == 1
    assert processor.persist(retry) == 0
    assert counters()["by_band"] == {"La Tona": "1"}
    log = MongoClient("mongodb://127.0.0.1:27017/")[settings.mongo_database]["votes"]
    (document,) = log.find({"_id": "same-id"})
    assert document["kafka"] == {"topic": settings.kafka_topic, "partition": 1, "offset": 5}
    assert set(document) == {
        "_id",
        "name",
        "album",
        "year",
        "rank",
        "received_at",
        "persisted_at",
        "source",
        "kafka",
    }


def run_in_thread(loop: ConsumeLoop) -> threading.Thread:
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    return thread


def test_poison_goes_to_the_dlq_and_the_partition_moves_on(settings: Settings) -> None:
    producer = Producer({"bootstrap.servers": "127.0.0.1:9092"})
    good = [encode_record(accept(make_vote("Easy Easy", f"g{i}"), "http")) for i in range(5)]
    # Same key for all: one partition, poison in the middle of good records.
    for value in (
        good[0].value,
        b"not json at all",
        good[1].value,
        b'{"vote_id": "x"}',
        b"\x00" * 900_000,
        *(g.value for g in good[2:]),
    ):
        producer.produce(settings.kafka_topic, key=b"k", value=value)
    assert producer.flush(10) == 0

    loop = build_consume_loop(settings)
    thread = run_in_thread(loop)
    try:
        wait_until(lambda: loop.stats.counted == 5, 30, f"5 good votes counted ({loop.stats})")
        wait_until(lambda: loop.stats.dead_lettered == 3, 10, "3 records dead-lettered")
    finally:
        loop.stop()
        thread.join(15)
    dlq = read_all(settings.kafka_dlq_topic)
    reasons = sorted(dict(m.headers())["dlq.reason"].decode()[:20] for m in dlq)
    assert len(dlq) == 3 and any(r.startswith("not JSON") for r in reasons)
    # Each once, keyed by where it was read: what a DLQ reader deduplicates on after a crash.
    where = sorted(
        (int(dict(m.headers())["dlq.partition"]), int(dict(m.headers())["dlq.offset"])) for m in dlq
    )
    assert sorted(m.key() for m in dlq) == [
        f"{settings.kafka_topic}/{p}/{o}".encode() for p, o in where
    ]
    assert len(set(where)) == 3 and all(dict(m.headers())["dlq.original_key"] == b"k" for m in dlq)
    assert all(dict(m.headers())["dlq.topic"] == settings.kafka_topic.encode() for m in dlq)
    huge = [m for m in dlq if dict(m.headers())["dlq.original_bytes"] == b"900000"]
    assert len(huge) == 1 and dict(huge[0].headers())["dlq.truncated"] == b"true"
    assert len(huge[0].value()) == 512 * 1024
    assert counters()["total"] == "5"


def test_a_dead_letter_retried_after_its_flush_timed_out_lands_once(settings: Settings) -> None:
    # A flush that waits 0 s never sees the acks: each retry must wait for the copies already
    # queued, not produce them again (it did, and the DLQ got one copy per attempt).
    sink = KafkaDeadLetters(new_dlq_producers(settings), settings.kafka_dlq_topic, timeout_s=0.0)
    poison = [Poison(FakeRecord(b"not json", 2, offset), "not JSON") for offset in (5, 6, 7)]
    attempts: list[int | None] = []

    def landed() -> bool:
        try:
            attempts.append(sink.send(poison))
        except KafkaException:
            attempts.append(None)
        return attempts[-1] is not None

    wait_until(landed, 30, "the DLQ acknowledged the dead letters", every_s=0.05)
    assert attempts[0] is None and attempts[-1] == 3 and len(attempts) > 1
    sink.close()
    dlq = read_all(settings.kafka_dlq_topic)
    assert sorted(m.key() for m in dlq) == [b"votes/2/5", b"votes/2/6", b"votes/2/7"]


def test_counts_survive_a_redis_restart(settings: Settings, stack: Any) -> None:
    processor = build_consume_loop(settings).processor
    processor.persist(
        delivered([make_vote("Viernes Verde", f"r{i}") for i in range(7)], settings.kafka_topic)
    )
    stack.stop("redis")
    stack.start("redis")
    assert counters()["total"] == "7"
    assert counters()["by_band"] == {"Viernes Verde": "7"}


def produce_votes(topic: str, prefix: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": "127.0.0.1:9092"})
    for i in range(count):
        message = encode_record(accept(make_vote("Malacates Trebol Shop", f"{prefix}{i}"), "http"))
        producer.produce(topic, key=message.key, value=message.value, headers=message.headers)
    assert producer.flush(10) == 0


def test_a_consumer_whose_group_membership_is_stuck_is_replaced_and_nothing_is_lost(
    settings: Settings,
) -> None:
    produce_votes(settings.kafka_topic, "before-", 40)
    loop = build_consume_loop(settings)
    thread = run_in_thread(loop)
    try:
        wait_until(lambda: loop.stats.counted == 40, 30, f"40 votes counted ({loop.stats})")
        first = loop.supervisor.consumer
        # Make the watch see a membership that has not been healthy for too long, as after the
        # broker restart that left a consumer unable to reach its coordinator.
        loop.supervisor.watch.stuck_after_s = -1.0
        wait_until(lambda: loop.stats.consumers_replaced >= 1, 15, "the consumer replaced")
        assert loop.supervisor.consumer is not first
        produce_votes(settings.kafka_topic, "after-", 40)
        wait_until(lambda: loop.stats.counted == 80, 60, f"80 votes counted ({loop.stats})")
        assert loop.stats.consumers_replaced == 1  # the new consumer's watch is healthy
    finally:
        loop.stop()
        thread.join(15)
    assert counters()["total"] == "80"
