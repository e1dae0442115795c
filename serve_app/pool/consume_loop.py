"""The consume loop of one pool replica: poll, process the batch, commit, refresh the lag.

    while not stopped:
        poll the next batch (bounded by size and time; briefly while batches are being stored)
        -> the processor prepares it: decodes it, dead-letters its poison
        -> the oldest batch in the vote log's hands is taken out to be counted if its store has
           ended, if no full batch came, or if STORES_IN_FLIGHT stores are running (then the
           loop waits for that store)
        -> the new batch goes to the vote log on a thread of its own (StoreAhead): the vote
           log's insert, the pool's longest wait, overlaps with the loop's own work, and for a
           full batch (a backlog) with the store of the batch before it
        -> the batch taken out: apply it to the counters, commit its offsets (asynchronously,
           only after both its store and its count succeeded)
        -> every LAG_REFRESH_S: the lag of the owned partitions
        -> every POSITIONS_COMMIT_S, with no batch in hand: commit where it stands (repairs a
           commit lost in a rebalance)
        -> the supervisor replaces the consumer if its group membership is stuck
    finally: close the consumer (leaves the group), flush the dead-letter producer

Up to STORES_IN_FLIGHT batches are in the vote log's hands at once and their stores may end in
any order; the counters get the batches one at a time and in order, each after its own store
(docs/decisions/0014-pool-per-vote-cost.md, docs/decisions/0020-pool-batches.md).

A crash anywhere before the commit makes Kafka redeliver the batch, and `serve_app.domain.counting`
explains why a redelivered record changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from serve_app.metrics import PersistMetrics
from serve_app.pool.dead_letters import KafkaDeadLetters
from serve_app.pool.ports import ConsumedRecord, Offsets
from serve_app.pool.processor import BatchProcessor, Prepared, Stored
from serve_app.pool.stats import PersisterStats
from serve_app.pool.supervision import ConsumerSupervisor

log = logging.getLogger("ray.serve").getChild(__name__)

BATCH_MAX_RECORDS = 1000
BATCH_MAX_WAIT_S = 0.1
# While a batch is being stored, poll only briefly: its count waits for the poll to return.
BATCH_WAIT_WHILE_STORING_S = 0.01
# Draining a backlog, two inserts in flight keep the vote log busy while one of them is encoded
# or on the wire: docs/decisions/0020-pool-batches.md.
STORES_IN_FLIGHT = 2
LAG_REFRESH_S = 1.0
# An asynchronous commit can fail in a rebalance that leaves the partition here; nothing new
# then commits it again and the group's lag stays up for good (seen in the autoscaling scenario:
# 3,955 records "behind" that were stored and counted). Re-committing the positions repairs it.
POSITIONS_COMMIT_S = 5.0


class ConsumeLoop:
    """One Kafka consumer feeding one batch processor. Runs without Ray, so tests can drive it."""

    def __init__(
        self,
        supervisor: ConsumerSupervisor,
        processor: BatchProcessor,
        dead_letters: KafkaDeadLetters,
        stop: threading.Event,
        metrics: PersistMetrics | None = None,
        stores_in_flight: int = STORES_IN_FLIGHT,
    ) -> None:
        """`stop` is also the event the processor's retries wait on."""
        if stores_in_flight < 1:
            raise ValueError(f"stores_in_flight must be at least 1, got {stores_in_flight}")
        self.supervisor = supervisor
        self.processor = processor
        self._dead_letters = dead_letters
        self._stop = stop
        self._metrics = metrics or PersistMetrics()
        self._lag_updated_at = 0.0
        self._positions_committed_at = time.monotonic()
        self._storing: deque[StoreAhead] = deque()  # batches the vote log is storing, oldest first
        self._stores_in_flight = stores_in_flight

    @property
    def stats(self) -> PersisterStats:
        return self.processor.stats

    def run(self) -> None:
        """Consume until stop() is called, then leave the group cleanly."""
        self.supervisor.subscribe()
        try:
            while not self._stop.is_set():
                self._poll_once()
        finally:
            self.supervisor.close()
            self._dead_letters.close()

    def stop(self) -> None:
        self._stop.set()

    def _poll_once(self) -> None:
        consumer = self.supervisor.consumer
        wait_s = BATCH_WAIT_WHILE_STORING_S if self._storing else BATCH_MAX_WAIT_S
        records = without_errors(consumer.consume(BATCH_MAX_RECORDS, wait_s))
        prepared = self.processor.prepare(records) if records else None
        if records and prepared is None:
            return  # stopped while dead-lettering: commit nothing
        oldest = self._oldest_to_count(new_batch=prepared)
        stored = None if oldest is None else oldest.result()
        if oldest is not None and stored is None:
            return  # stopped before the vote log had the batch: commit nothing
        if prepared is not None:
            # The next store may begin before this count: which copy of a vote counts is settled
            # by the vote log's answer to each store, and the counts still reach Redis in batch
            # order (docs/decisions/0020-pool-batches.md).
            self._storing.append(StoreAhead(self.processor, prepared))
        if oldest is not None and stored is not None:
            offsets = self.processor.count(oldest.prepared, stored)
            if offsets is None:
                return  # stopped before the counters had the batch: commit nothing
            if offsets:
                commit_async(consumer, offsets)
        now = time.monotonic()
        if now - self._lag_updated_at >= LAG_REFRESH_S:
            self._refresh_lag(consumer)
        if not self._storing:  # positions and consumers change only with no batch in hand
            if now - self._positions_committed_at >= POSITIONS_COMMIT_S:
                self._positions_committed_at = now
                commit_positions(consumer)
            self.supervisor.replace_if_stuck(now)

    def _oldest_to_count(self, new_batch: Prepared | None) -> StoreAhead | None:
        """The oldest batch in the vote log's hands, if it is to be counted now.

        It is when its store has ended, when no full batch came, or when `stores_in_flight`
        stores are running. A second store runs only beside full batches (a backlog): under live
        traffic waiting lets the next batch grow, and small batches cost more per vote.
        """
        if not self._storing:
            return None
        oldest = self._storing[0]
        full = new_batch is not None and len(new_batch.records) >= BATCH_MAX_RECORDS
        if oldest.done() or not full or len(self._storing) >= self._stores_in_flight:
            return self._storing.popleft()
        return None

    def _refresh_lag(self, consumer: Consumer) -> None:
        self._lag_updated_at = time.monotonic()
        lag = partition_lag(consumer)
        if lag is None:
            return
        stats = self.stats
        for partition in set(stats.lag) - set(lag):
            self._metrics.consumer_lag.set(0, tags={"partition": str(partition)})
        for partition, value in lag.items():
            self._metrics.consumer_lag.set(value, tags={"partition": str(partition)})
        stats.lag = lag


class StoreAhead:
    """One batch going into the vote log on a thread of its own, while the loop polls the next.

    The thread runs `BatchProcessor.store` (with its retries, which end when the loop is
    stopped); `result()` waits for it on the loop's thread and raises what it raised.
    """

    def __init__(self, processor: BatchProcessor, prepared: Prepared) -> None:
        self.prepared = prepared
        self._stored: Stored | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._store, args=(processor,), name="vote-log-store", daemon=True
        )
        self._thread.start()

    def _store(self, processor: BatchProcessor) -> None:
        try:
            self._stored = processor.store(self.prepared)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop's thread by result()
            self._error = exc

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self) -> Stored | None:
        """What the vote log holds for the batch's votes; None when stopped before it stored."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._stored


def without_errors(messages: Sequence[Message]) -> list[ConsumedRecord]:
    """The records of a polled batch; consumer errors in it are logged (end of partition is not)."""
    records: list[ConsumedRecord] = []
    for message in messages:
        error = message.error()
        if error is None:
            records.append(message)  # type: ignore[arg-type]
        elif error.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error: %s", error.str())
    return records


def partition_lag(consumer: Consumer) -> dict[int, int] | None:
    """Records behind per owned partition, from cached watermarks (no broker call); None: unknown."""
    try:
        assignment = consumer.assignment()
        positions = consumer.position(assignment) if assignment else []
    except KafkaException:
        return None
    lag: dict[int, int] = {}
    for tp in positions:
        try:
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
        except KafkaException:
            continue
        # No position yet is not "all behind" (docs/decisions/0011-pool-scales-on-lag.md).
        if high < 0 or tp.offset < 0:
            continue
        lag[tp.partition] = max(0, high - tp.offset)
    return lag


def commit_async(consumer: Consumer, offsets: Offsets) -> None:
    """Commit without waiting for the coordinator (docs/decisions/0002-async-offset-commits.md)."""
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=True
        )
    except KafkaException as exc:
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
    failed = [p for p in partitions if p.error is not None]
    if error is not None or failed:
        reason = error.str() if error is not None else failed[0].error.str()
        log.warning("offset commit failed (records will be redelivered): %s", reason)
