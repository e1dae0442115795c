"""The pool's offset commit never waits for the group coordinator."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import pytest
from confluent_kafka import KafkaError, TopicPartition

from serve_app.pool.deployment import BatchPersister
from serve_app.settings import Settings


@dataclass
class FakeMessage:
    """What _commit reads of a consumed record (a confluent_kafka.Message cannot be built)."""

    partition_no: int
    offset_no: int

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "votes"

    def partition(self) -> int:
        return self.partition_no

    def offset(self) -> int:
        return self.offset_no


@dataclass
class FakePartition:
    """What _on_commit reads of a committed partition."""

    error: KafkaError | None


def test_a_commit_returns_at_once_when_no_coordinator_answers() -> None:
    # Nothing listens on port 1: like a consumer that lost its coordinator after a broker restart.
    # A synchronous commit waited there for good (checked by hand: still blocked after 20 s), and
    # with it the consume loop and GroupWatch, which should replace such a consumer.
    persister = BatchPersister(Settings(kafka_bootstrap_servers="127.0.0.1:1"))
    committed = threading.Event()

    def commit() -> None:
        persister._commit([FakeMessage(0, 41), FakeMessage(0, 42), FakeMessage(3, 7)])  # type: ignore[list-item]
        committed.set()

    worker = threading.Thread(target=commit, daemon=True)
    try:
        worker.start()
        assert committed.wait(timeout=5), "the commit blocked the consume loop"
    finally:
        persister._consumer.close()


def test_the_outcome_of_a_commit_is_logged_only_when_it_failed(caplog: pytest.LogCaptureFixture) -> None:
    persister = BatchPersister(Settings(kafka_bootstrap_servers="127.0.0.1:1"))
    try:
        caplog.set_level(logging.WARNING, logger="ray.serve")
        persister._on_commit(None, [TopicPartition("votes", 0, 42)])
        assert not caplog.records
        # A TopicPartition's error is read-only: a stand-in carries one.
        failed = FakePartition(KafkaError(KafkaError.REBALANCE_IN_PROGRESS))
        persister._on_commit(None, [TopicPartition("votes", 0, 42), failed])  # type: ignore[list-item]
        assert [r.getMessage() for r in caplog.records] == [
            f"offset commit failed (records will be redelivered): {failed.error.str()}"]
    finally:
        persister._consumer.close()
