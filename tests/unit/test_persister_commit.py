"""The pool's offset commit never waits for the group coordinator."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import pytest
from confluent_kafka import KafkaError, TopicPartition

from serve_app.pool.clients import new_consumer
from serve_app.pool.consume_loop import commit_async, log_commit_outcome
from serve_app.settings import Settings


@dataclass
class FakePartition:
    """What log_commit_outcome reads of a committed partition."""

    error: KafkaError | None


def test_a_commit_returns_at_once_when_no_coordinator_answers() -> None:
    # Nothing listens on port 1: like a consumer that lost its coordinator after a broker restart.
    # A synchronous commit waited there for good (checked by hand: still blocked after 20 s), and
    # with it the consume loop and GroupWatch, which should replace such a consumer.
    consumer = new_consumer(Settings(kafka_bootstrap_servers="127.0.0.1:1"), lambda _stats: None)
    committed = threading.Event()

    def commit() -> None:
        commit_async(consumer, {("votes", 0): 43, ("votes", 3): 8})
        committed.set()

    worker = threading.Thread(target=commit, daemon=True)
    try:
        worker.start()
        assert committed.wait(timeout=5), "the commit blocked the consume loop"
    finally:
        consumer.close()


def test_the_outcome_of_a_commit_is_logged_only_when_it_failed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ray.serve")
    log_commit_outcome(None, [TopicPartition("votes", 0, 42)])
    assert not caplog.records
    # A TopicPartition's error is read-only: a stand-in carries one.
    failed = FakePartition(KafkaError(KafkaError.REBALANCE_IN_PROGRESS))
    log_commit_outcome(None, [TopicPartition("votes", 0, 42), failed])  # type: ignore[list-item]
    assert [r.getMessage() for r in caplog.records] == [
        f"offset commit failed (records will be redelivered): {failed.error.str()}"]
