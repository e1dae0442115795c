"""The consume loop's offset commits: all asynchronous, since a synchronous commit can wait for good
on a consumer that lost its coordinator (docs/decisions/0002-async-offset-commits.md)."""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from serve_app.pool.ports import Offsets

log = logging.getLogger("ray.serve").getChild(__name__)


def commit_async(consumer: Consumer, offsets: Offsets) -> None:
    """Commit without waiting for the coordinator (docs/decisions/0002-async-offset-commits.md)."""
    try:
        consumer.commit(offsets=_partitions(offsets), asynchronous=True)
    except (KafkaException, RuntimeError) as exc:  # RuntimeError: the consumer is closing
        # The partition moved during the batch: its new owner gets the records again (a no-op).
        log.warning("offset commit failed (records will be redelivered): %s", exc)


def commit_positions(consumer: Consumer) -> None:
    """Commit, asynchronously, where the consumer stands in each partition it owns.

    Safe between batches only: every record before a position has been stored and counted, since
    each polled batch is processed before the next poll. A partition without a position yet (just
    assigned, nothing fetched) is left alone.
    """
    try:
        assignment = consumer.assignment()
        known = consumer.position(assignment) if assignment else []
        positions = [tp for tp in known if tp.offset >= 0]
        if positions:
            consumer.commit(offsets=positions, asynchronous=True)
    except KafkaException as exc:
        log.warning("committing the positions failed (tried again later): %s", exc)


def log_commit_outcome(error: KafkaError | None, partitions: list[TopicPartition]) -> None:
    """The consumer's `on_commit`: an asynchronous commit's outcome, logged only when it failed."""
    failures = [p.error for p in partitions if p.error is not None]
    if error is not None or failures:
        reason = error.str() if error is not None else failures[0].str()
        log.warning("offset commit failed (records will be redelivered): %s", reason)


def _partitions(offsets: Offsets) -> list[TopicPartition]:
    return [
        TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()
    ]
