"""The dead-letter sink: what a poison record looks like on the DLQ, and that a replica produces
each poison record once (a fake of the confluent-kafka producer's calls the sink makes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from serve_app.kafka_errors import ReplaceableProducer
from serve_app.pool.dead_letters import (
    DLQ_MAX_VALUE_BYTES,
    KafkaDeadLetters,
    dead_letter,
    dead_letter_key,
)
from serve_app.pool.ports import Poison
from serve_app.pool.processor import BatchProcessor
from serve_app.pool.stats import PersisterStats
from tests.support.counting_model import CountingModel
from tests.unit.pool.test_processor import TOPIC, FakeRecord, FakeVoteLog, vote_record

Report = Callable[[KafkaError | None, object], None]


def test_a_dead_letter_says_why_and_where_from_after_the_original_headers() -> None:
    record = FakeRecord(b"not json", 4, 17, b"k")
    value, headers = dead_letter(Poison(record, "not JSON"))
    assert value == b"not json"
    assert headers == [
        ("dlq.reason", b"not JSON"),
        ("dlq.topic", b"votes"),
        ("dlq.partition", b"4"),
        ("dlq.offset", b"17"),
        ("dlq.original_bytes", b"8"),
        ("dlq.original_key", b"k"),
    ]
    assert dead_letter_key(record) == b"votes/4/17"  # every copy of it has this key


def test_a_value_over_the_limit_keeps_a_prefix_and_says_so() -> None:
    value, headers = dead_letter(Poison(FakeRecord(b"x" * 900_000, 0, 0), "too big"))
    assert len(value) == DLQ_MAX_VALUE_BYTES
    assert ("dlq.original_bytes", b"900000") in headers and headers[-1] == (
        "dlq.truncated",
        b"true",
    )
    assert not any(name == "dlq.original_key" for name, _ in headers)  # the record had no key


@dataclass
class FakeBroker:
    """The DLQ's broker as the producers see it: up (acks), down (no reports) or refusing."""

    up: bool = False
    refuse_with: KafkaError | None = None  # each delivery report fails with this error
    fatal: KafkaError | None = None  # the next flush raises this fatal error on its producer
    produced: list[bytes] = field(default_factory=list)  # keys, across all producers
    acked: list[bytes] = field(default_factory=list)
    producers: list[FakeProducer] = field(default_factory=list)

    def new_producer(self, config: dict[str, Any]) -> FakeProducer:
        producer = FakeProducer(self, config["error_cb"])
        self.producers.append(producer)
        return producer


@dataclass
class FakeProducer:
    """The confluent-kafka Producer calls KafkaDeadLetters makes."""

    broker: FakeBroker
    error_cb: Callable[[KafkaError], None]
    queued: list[tuple[bytes, Report]] = field(default_factory=list)
    purged: bool = False
    refuses: KafkaError | None = None  # produce() raises this

    def produce(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, bytes]],
        on_delivery: Report,
    ) -> None:
        assert topic == "votes.dlq"
        if self.refuses is not None:
            raise KafkaException(self.refuses)
        self.broker.produced.append(key)
        self.queued.append((key, on_delivery))

    def flush(self, _timeout: float) -> int:
        broker = self.broker
        if broker.fatal is not None:
            self.error_cb(broker.fatal)
            self._report_all(broker.fatal)
            broker.fatal = None
        elif broker.refuse_with is not None:
            self._report_all(broker.refuse_with)
        elif broker.up:
            for key, _report in self.queued:
                broker.acked.append(key)
            self._report_all(None)
        return len(self.queued)  # still waiting: the flush timed out

    def purge(self, in_queue: bool, in_flight: bool, blocking: bool) -> None:
        self.purged = True

    def poll(self, _timeout: float) -> int:
        if self.purged:
            self._report_all(KafkaError(KafkaError._PURGE_QUEUE))
        return 0

    def _report_all(self, error: KafkaError | None) -> None:
        queued, self.queued = self.queued, []
        for _key, report in queued:
            report(error, None)


def sink_over(broker: FakeBroker) -> KafkaDeadLetters:
    producers = ReplaceableProducer("dead-letter producer", {}, broker.new_producer)
    return KafkaDeadLetters(producers, "votes.dlq", timeout_s=5.0)


def poison(*offsets: int) -> list[Poison]:
    return [Poison(FakeRecord(b"not json", 0, offset), "not JSON") for offset in offsets]


def test_a_retry_after_a_flush_timed_out_waits_for_the_queued_copies_not_producing_again() -> None:
    broker = FakeBroker(up=False)
    sink = sink_over(broker)
    with pytest.raises(KafkaException, match=r"not acknowledged 2 of 2 records \(2 still waiting"):
        sink.send(poison(3, 4))
    with pytest.raises(KafkaException):
        sink.send(poison(3, 4))
    broker.up = True
    assert sink.send(poison(3, 4)) == 2
    assert broker.produced == [b"votes/0/3", b"votes/0/4"]
    assert broker.acked == [b"votes/0/3", b"votes/0/4"]


def test_a_record_the_dlq_did_not_take_is_produced_again() -> None:
    broker = FakeBroker(refuse_with=KafkaError(KafkaError._MSG_TIMED_OUT, "Message timed out"))
    sink = sink_over(broker)
    with pytest.raises(KafkaException, match="Message timed out"):
        sink.send(poison(7))
    broker.refuse_with, broker.up = None, True
    assert sink.send(poison(7)) == 1
    assert broker.produced == [b"votes/0/7", b"votes/0/7"] and broker.acked == [b"votes/0/7"]


def test_a_batch_that_comes_back_to_the_replica_is_not_dead_lettered_or_counted_again() -> None:
    broker = FakeBroker(up=True)
    sink = sink_over(broker)
    assert sink.send(poison(1, 2)) == 2
    assert sink.send(poison(1, 2, 5)) == 1  # redelivered after a rebalance, with one record more
    assert broker.produced == [b"votes/0/1", b"votes/0/2", b"votes/0/5"]


def test_a_producer_with_a_fatal_error_is_replaced_and_its_records_produced_on_the_new_one() -> (
    None
):
    broker = FakeBroker(up=True, fatal=KafkaError(KafkaError._FATAL, "sequence gap", fatal=True))
    sink = sink_over(broker)
    with pytest.raises(KafkaException, match="sequence gap"):
        sink.send(poison(9))
    assert sink.send(poison(9)) == 1
    first, second = broker.producers
    assert first.purged and not second.purged
    assert broker.acked == [b"votes/0/9"]


def test_a_producer_that_refuses_a_record_with_a_fatal_error_is_replaced() -> None:
    # A fatal producer refuses produce() itself; its error_cb may not have run yet.
    broker = FakeBroker(up=True)
    sink = sink_over(broker)
    broker.producers[0].refuses = KafkaError(KafkaError._FATAL, "fenced", fatal=True)
    with pytest.raises(KafkaException, match="fenced"):
        sink.send(poison(4))
    assert sink.send(poison(4)) == 1
    assert len(broker.producers) == 2 and broker.acked == [b"votes/0/4"]


def test_a_replica_remembers_a_bounded_number_of_dead_letters() -> None:
    broker = FakeBroker(up=True)
    sink = KafkaDeadLetters(
        ReplaceableProducer("dead-letter producer", {}, broker.new_producer),
        "votes.dlq",
        timeout_s=5.0,
        remembered=2,
    )
    for offset in (1, 2, 3):
        sink.send(poison(offset))
    assert sink.send(poison(3)) == 0  # still remembered
    assert sink.send(poison(1)) == 1  # forgotten: produced again, with the same key
    assert broker.produced.count(b"votes/0/1") == 2


def test_the_processor_counts_each_dead_letter_once_across_a_timed_out_flush_and_a_redelivery() -> (
    None
):
    broker = FakeBroker(up=False)
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        broker.up = len(waits) >= 2  # the DLQ acks from the third attempt on
        return False

    processor = BatchProcessor(
        TOPIC,
        FakeVoteLog(),
        CountingModel(),
        sink_over(broker),
        retryable=(KafkaException,),
        wait=wait,
        stats=PersisterStats(),
    )
    batch = [vote_record("a", 0, 0), FakeRecord(b"{", 0, 1), FakeRecord(b"[]", 0, 2)]
    assert processor.process(batch) == {(TOPIC, 0): 3}
    assert processor.process(batch) == {(TOPIC, 0): 3}  # redelivered to this replica
    assert broker.produced == [b"votes/0/1", b"votes/0/2"] and len(waits) == 2
    assert processor.stats.dead_lettered == 2 and processor.stats.store_failures == 2
