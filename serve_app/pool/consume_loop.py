"""The consume loop of one pool replica: poll, process the batch, commit, refresh the lag.

    while not stopped:
        poll the next batch (bounded by size and time; briefly while batches are being stored)
        -> the processor prepares it: decodes it, dead-letters its poison, drops the votes the
           counters have applied already (a redelivery)
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
    partitions revoked (inside the poll): finish the batches in hand and commit what was counted
        of the revoked partitions, so that their next owner starts after it
    finally: close the consumer (leaves the group), flush the dead-letter producer

Up to STORES_IN_FLIGHT batches are in the vote log's hands at once and their stores may end in
any order; the counters get the batches one at a time and in order, each after its own store
(docs/decisions/0014-pool-per-vote-cost.md, docs/decisions/0020-pool-batches.md).

A crash anywhere before the commit makes Kafka redeliver the batch, and `serve_app.domain.counting`
explains why a redelivered record changes nothing. tests/chaos/test_pool_nemesis.py drives this
loop through crashes, rebalances and store failures against fakes of its ports.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from serve_app.metrics import PersistMetrics
from serve_app.pool.commits import commit_async, commit_positions
from serve_app.pool.dead_letters import KafkaDeadLetters
from serve_app.pool.ports import ConsumedRecord, Offsets
from serve_app.pool.processor import BatchProcessor, Prepared, Stored
from serve_app.pool.stats import PersisterStats
from serve_app.pool.store_ahead import InFlightStore, StoreAhead, StoreStarter
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
        *,
        batch_max_records: int = BATCH_MAX_RECORDS,
        clock: Callable[[], float] = time.monotonic,
        start_store: StoreStarter = StoreAhead,
    ) -> None:
        """`stop` is also the event the processor's retries wait on; `start_store` begins a
        store."""
        if stores_in_flight < 1:
            raise ValueError(f"stores_in_flight must be at least 1, got {stores_in_flight}")
        if batch_max_records < 1:
            raise ValueError(f"batch_max_records must be at least 1, got {batch_max_records}")
        self.supervisor = supervisor
        self.processor = processor
        self._dead_letters = dead_letters
        self._stop = stop
        self._metrics = metrics or PersistMetrics()
        self._clock = clock
        self._start_store = start_store
        self._lag_updated_at = 0.0
        self._positions_committed_at = clock()
        self._storing: deque[InFlightStore] = (
            deque()
        )  # batches the vote log is storing, oldest first
        self._stores_in_flight = stores_in_flight
        self._batch_max_records = batch_max_records
        # Per partition, the next offset after the last batch this consumer counted.
        self._counted: Offsets = {}
        self._left_undone = False  # a batch was: no later one may be counted (its votes skipped)
        supervisor.after_assign = self._partitions_assigned
        supervisor.before_revoke = self._partitions_revoked

    @property
    def stats(self) -> PersisterStats:
        return self.processor.stats

    def run(self) -> None:
        """Consume until stop() is called, then leave the group cleanly."""
        self.supervisor.subscribe()
        try:
            while not self._stop.is_set():
                self._poll_once()
        except BaseException:
            self._leave_undone()
            raise
        finally:
            self.close()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Finish the batches in hand and commit, leave the group, flush the DLQ producer."""
        try:
            try:
                # As on revoke, and before close(): librdkafka takes no commit in its last revoke.
                counted = [TopicPartition(topic, partition) for topic, partition in self._counted]
                self._partitions_revoked(self.supervisor.consumer, counted)
            finally:
                self.supervisor.close()
        finally:
            self._dead_letters.close()

    def _poll_once(self) -> None:
        consumer = self.supervisor.consumer
        wait_s = BATCH_WAIT_WHILE_STORING_S if self._storing else BATCH_MAX_WAIT_S
        records = without_errors(consumer.consume(self._batch_max_records, wait_s))
        prepared = self.processor.prepare(records) if records else None
        if records and prepared is None:
            return  # stopped while dead-lettering: commit nothing
        oldest = self._oldest_to_count(new_batch=prepared)
        stored = None if oldest is None else oldest.result()
        if oldest is not None and stored is None:
            self._leave_undone()  # stopped before the vote log had the batch
            return
        if prepared is not None:
            # The next store may begin before this count: which copy of a vote counts is settled
            # by the vote log's answer to each store, and the counts still reach Redis in batch
            # order (docs/decisions/0020-pool-batches.md).
            self._storing.append(self._start_store(self.processor, prepared))
        if oldest is not None and stored is not None:
            offsets = self._count(oldest.prepared, stored)
            if offsets is None:
                return  # stopped before the counters had the batch: commit nothing
            if offsets:
                commit_async(consumer, offsets)
        now = self._clock()
        if now - self._lag_updated_at >= LAG_REFRESH_S:
            self._refresh_lag(consumer)
        if not self._storing:  # positions and consumers change only with no batch in hand
            if now - self._positions_committed_at >= POSITIONS_COMMIT_S:
                self._positions_committed_at = now
                commit_positions(consumer)
            self.supervisor.replace_if_stuck(now)

    def _count(self, prepared: Prepared, stored: Stored) -> Offsets | None:
        """Count the next batch in order; None when stopped, and then no later one is counted."""
        offsets = None if self._left_undone else self.processor.count(prepared, stored)
        if offsets is None:
            self._leave_undone()
            return None
        self._counted.update(offsets)  # batches are counted in order: offsets only grow
        return offsets

    def _leave_undone(self) -> None:
        """A batch is left uncounted: counting a later one would move the applied mark past it."""
        self._left_undone = True
        self._storing.clear()

    def _oldest_to_count(self, new_batch: Prepared | None) -> InFlightStore | None:
        """The oldest batch in the vote log's hands, if it is to be counted now.

        It is when its store has ended, when no full batch came, or when `stores_in_flight`
        stores are running. A second store runs only beside full batches (a backlog): under live
        traffic waiting lets the next batch grow, and small batches cost more per vote.
        """
        if not self._storing:
            return None
        oldest = self._storing[0]
        full = new_batch is not None and len(new_batch.records) >= self._batch_max_records
        if oldest.done() or not full or len(self._storing) >= self._stores_in_flight:
            return self._storing.popleft()
        return None

    def _partitions_assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """A partition (re)joins: what the counters applied of it is read afresh on first use."""
        for tp in partitions:
            self._counted.pop((tp.topic, tp.partition), None)
        self.processor.forget_applied_marks()

    def _partitions_revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Inside the poll that revokes them: finish the batches in hand, commit, then let go.

        Otherwise the next owner starts from an older commit and stores again what is already
        stored, a lookup per duplicate. Stopped meanwhile: commit nothing.
        """
        finished: Offsets = {}
        while self._storing:
            in_hand = self._storing.popleft()
            stored = in_hand.result()
            offsets = None if stored is None else self._count(in_hand.prepared, stored)
            if offsets is None:
                self._leave_undone()
                return
            finished.update(offsets)
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        leaving = {key: self._counted.pop(key) for key in revoked if key in self._counted}
        # Asynchronous, yet before the next owner: librdkafka completes the revoke only once the
        # commits in flight are answered (docs/decisions/0024-commit-on-revoke.md).
        if finished | leaving:
            commit_async(consumer, finished | leaving)

    def _refresh_lag(self, consumer: Consumer) -> None:
        self._lag_updated_at = self._clock()
        lag = partition_lag(consumer)
        if lag is None:
            return
        stats = self.stats
        for partition in set(stats.lag) - set(lag):
            self._metrics.consumer_lag.set(0, tags={"partition": str(partition)})
        for partition, value in lag.items():
            self._metrics.consumer_lag.set(value, tags={"partition": str(partition)})
        stats.lag = lag


def without_errors(messages: Sequence[Message]) -> list[ConsumedRecord]:
    """The records of a polled batch; consumer errors in it are logged (end of partition is not)."""
    records: list[ConsumedRecord] = []
    for message in messages:
        error = message.error()
        if error is None:
            records.append(message)  # type: ignore[arg-type]  # stub: topic() etc. Optional even with no error
        elif error.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error: %s", error.str())
    return records


def partition_lag(consumer: Consumer) -> dict[int, int] | None:
    """Records behind per owned partition, from cached watermarks (no broker call); None:
    unknown."""
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
