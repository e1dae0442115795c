"""Reconciliation counts the records a read_committed reader gets, not the high watermarks: since
batches became Kafka transactions, each leaves a commit marker that takes an offset in every
partition it wrote to (docs/decisions/0023-transactional-batches.md). A fake broker log with
markers stands in for Kafka: `make bench-scale` and e2e_latency must count its records only."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import confluent_kafka
import pytest
from confluent_kafka import TopicPartition

from bench.scenarios import e2e
from bench.scenarios.scale import ingest
from devkit.kafka import readable_records

RECORD, MARKER = "record", "marker"


class FakeMessage:
    def __init__(self, partition: int, offset: int, key: bytes) -> None:
        self._partition, self._offset, self._key = partition, offset, key

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key


class FakeConsumer:
    """confluent_kafka.Consumer over LOG: each partition a list of RECORD / MARKER offsets; a
    read_committed consumer is given the records, and its position passes the markers."""

    log: ClassVar[dict[int, list[str]]] = {}

    def __init__(self, config: dict[str, Any]) -> None:
        self.positions: dict[int, int] = {}

    def list_topics(self, topic: str, timeout: float) -> Any:
        partitions = dict.fromkeys(self.log)
        return type("Meta", (), {"topics": {topic: type("T", (), {"partitions": partitions})}})

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float = 0) -> tuple[int, int]:
        return 0, len(self.log[tp.partition])

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.positions = {tp.partition: max(tp.offset, 0) for tp in partitions}

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        messages = []
        for partition, start in self.positions.items():
            entries = self.log[partition]
            messages += [
                FakeMessage(partition, offset, f"vote-{partition}-{offset}".encode())
                for offset in range(start, len(entries))
                if entries[offset] == RECORD
            ]
            self.positions[partition] = len(entries)
        return messages

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.positions[tp.partition])
            for tp in partitions
        ]

    def close(self) -> None:
        return None


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch) -> dict[int, list[str]]:
    """The fake broker's log, empty; what the test appends is what a reader finds."""
    log: dict[int, list[str]] = {0: [], 1: []}
    monkeypatch.setattr(FakeConsumer, "log", log)
    monkeypatch.setattr(confluent_kafka, "Consumer", FakeConsumer)
    return log


def write_batch_in_a_transaction(log: dict[int, list[str]], votes: dict[int, int]) -> None:
    """`votes[p]` records into partition p, then the transaction's commit marker in each."""
    for partition, count in votes.items():
        log[partition] += [RECORD] * count + [MARKER]


def test_readable_records_leave_the_transaction_markers_out(kafka: dict[int, list[str]]) -> None:
    write_batch_in_a_transaction(kafka, {0: 3, 1: 2})
    assert readable_records("votes") == 5


def test_scale_reconciles_a_batch_written_in_a_transaction(kafka: dict[int, list[str]]) -> None:
    write_batch_in_a_transaction(kafka, {0: 1})
    before = readable_records("votes")
    ends_before = ingest.partition_ends("votes")
    write_batch_in_a_transaction(kafka, {0: 600, 1: 400})  # one batch of 1000, accepted
    outcome = ingest.reconcile("votes", before, ends_before, accepted=1000, errors=0)
    assert outcome["kafka_records"] == 1000
    assert outcome["reconciled"], outcome["reconciliation"]


def test_e2e_counts_the_records_the_pool_reads(kafka: dict[int, list[str]]) -> None:
    class Counters:  # the pool has counted every vote of the run
        async def get(self, key: str) -> int:
            return 40 + 5

    write_batch_in_a_transaction(kafka, {0: 3, 1: 2})
    records, counted = asyncio.run(
        e2e.records_and_counted("votes", 0, Counters(), 40, drain_timeout_s=0.3)
    )
    assert (records, counted) == (5, 5)
