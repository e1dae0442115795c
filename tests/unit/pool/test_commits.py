"""The pool's offset commit never waits for the group coordinator."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, TopicPartition

from serve_app.pool import consume_loop
from serve_app.pool.clients import new_consumer
from serve_app.pool.commits import commit_async, commit_positions, log_commit_outcome
from serve_app.pool.consume_loop import ConsumeLoop
from serve_app.pool.stats import PersisterStats
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


def test_the_outcome_of_a_commit_is_logged_only_when_it_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="ray.serve")
    log_commit_outcome(None, [TopicPartition("votes", 0, 42)])
    assert not caplog.records
    # A TopicPartition's error is read-only: a stand-in carries one.
    failed = FakePartition(KafkaError(KafkaError.REBALANCE_IN_PROGRESS))
    log_commit_outcome(None, [TopicPartition("votes", 0, 42), failed])  # type: ignore[list-item]  # a stand-in with an error
    assert [r.getMessage() for r in caplog.records] == [
        f"offset commit failed (records will be redelivered): {failed.error.str()}"
    ]


class FakeConsumer:
    """The calls commit_positions and the consume loop make, recorded."""

    def __init__(self, positions: list[TopicPartition]) -> None:
        self.positions = positions
        self.commits: list[tuple[list[tuple[str, int, int]], bool]] = []

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition) for tp in self.positions]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return list(self.positions)

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append(([(tp.topic, tp.partition, tp.offset) for tp in offsets], asynchronous))

    def consume(self, _count: int, _timeout: float) -> list[object]:
        return []

    def get_watermark_offsets(self, _tp: TopicPartition, cached: bool) -> tuple[int, int]:
        return 0, 100


def test_the_positions_are_committed_without_waiting_and_only_where_known() -> None:
    # -1001 is librdkafka's "no position yet": a partition just assigned, nothing fetched.
    consumer = FakeConsumer([TopicPartition("votes", 0, 42), TopicPartition("votes", 1, -1001)])
    commit_positions(consumer)  # type: ignore[arg-type]  # a fake consumer
    assert consumer.commits == [([("votes", 0, 42)], True)]


def test_the_loop_commits_its_positions_again_so_a_lost_commit_is_repaired() -> None:
    # A commit lost in a rebalance that left the partition here is never retried by a batch
    # commit once no new records arrive: the periodic positions commit repairs the group's lag.
    consumer = FakeConsumer([TopicPartition("votes", 0, 500)])
    supervisor = SimpleNamespace(consumer=consumer, replace_if_stuck=lambda _now: None)
    processor = SimpleNamespace(stats=PersisterStats())
    clock = [1000.0]
    loop = ConsumeLoop(
        supervisor,
        processor,  # type: ignore[arg-type]  # only its stats are read
        dead_letters=None,
        stop=threading.Event(),
        clock=lambda: clock[0],
    )
    loop._poll_once()
    assert consumer.commits == []  # not before POSITIONS_COMMIT_S
    clock[0] += consume_loop.POSITIONS_COMMIT_S
    loop._poll_once()
    assert consumer.commits == [([("votes", 0, 500)], True)]
