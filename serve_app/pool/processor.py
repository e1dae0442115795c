"""One consumed batch -> dead-letter sink, vote log, counters; returns the offsets to commit.

    prepare: decode each record; votes at or below their partition's applied mark are dropped
      (a redelivery: counted, so stored); undecodable ones go to the dead-letter sink with the
      reason
      -> store: the vote log stores the votes by vote_id (it says which record of each it holds)
      -> count: the counters apply the counts and the partitions' offsets atomically
      -> the next offset per partition, for the consume loop to commit
    a step failing: retry that step with backoff, skip nothing; stopped meanwhile: commit nothing;
      failing for STALL_LIMIT_S: the replica fails its health check (`serve_app.pool.stall`)

`process` runs the three steps in a row; the consume loop runs `store` on a thread of its own
while it polls and prepares the next batch (docs/decisions/0014-pool-per-vote-cost.md).

The retry lives here, per step, rather than in the consume loop: a batch whose store fails after
its poison records were dead-lettered retries the store alone, so the dead-letter sink is not
asked for them again (the sink itself produces each once: `serve_app.pool.dead_letters`). The
stores come in through `serve_app.pool.ports`; nothing here builds a client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from serve_app.domain.counting import Delivered, counter_updates
from serve_app.domain.votes import RecordError, decode_record
from serve_app.metrics import PersistMetrics
from serve_app.pool.ports import ConsumedRecord, Counters, DeadLetterSink, Offsets, Poison, VoteLog
from serve_app.pool.stall import STALL_LIMIT_S, Failing, StallWatch
from serve_app.pool.stats import PersisterStats

# Under "ray.serve": Serve writes these to the replica logs shown in the Ray dashboard.
log = logging.getLogger("ray.serve").getChild(__name__)

T = TypeVar("T")

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0


def decode(records: Sequence[ConsumedRecord]) -> tuple[list[Delivered], list[Poison]]:
    """Split a batch into vote records (with where they came from) and poison records."""
    delivered: list[Delivered] = []
    poison: list[Poison] = []
    for record in records:
        try:
            vote = decode_record(record.value())
        except RecordError as exc:
            poison.append(Poison(record, exc.reason))
            continue
        delivered.append(Delivered(vote, record.topic(), record.partition(), record.offset()))
    return delivered, poison


def next_offsets(records: Sequence[ConsumedRecord]) -> Offsets:
    """Per (topic, partition): one past the highest offset in the batch."""
    offsets: Offsets = {}
    for record in records:
        key = (record.topic(), record.partition())
        offsets[key] = max(offsets.get(key, 0), record.offset() + 1)
    return offsets


# vote_id -> (partition, offset) of the record the vote log holds for it.
Stored = Mapping[str, tuple[int, int]]


@dataclass(frozen=True)
class Prepared:
    """A decoded batch whose poison records are dead-lettered: what the vote log stores next."""

    records: Sequence[ConsumedRecord]
    delivered: list[Delivered]
    dead: int
    started: float


class BatchProcessor:
    """Persists consumed batches exactly once through its ports. Runs without Kafka or Ray."""

    def __init__(
        self,
        topic: str,
        vote_log: VoteLog,
        counters: Counters,
        dead_letters: DeadLetterSink,
        *,
        retryable: tuple[type[Exception], ...],
        wait: Callable[[float], bool],
        stats: PersisterStats | None = None,
        metrics: PersistMetrics | None = None,
        stall_limit_s: float = STALL_LIMIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`retryable`: the store failures worth retrying; `wait(s)`: sleep, True when stopped;
        a step failing for `stall_limit_s` (by `clock`) makes the replica unhealthy."""
        self._topic = topic
        self._vote_log = vote_log
        self._counters = counters
        self._dead_letters = dead_letters
        self._retryable = retryable
        self._wait = wait
        self.stats = stats or PersisterStats()
        self._metrics = metrics or PersistMetrics()
        self._stalls = StallWatch(self.stats, self._metrics, stall_limit_s, clock)
        # Partition -> the last offset the counters applied, read once per assignment.
        self._applied: dict[int, int] = {}

    def process(self, records: Sequence[ConsumedRecord]) -> Offsets | None:
        """Persist one batch; the offsets to commit, or None when stopped before it was
        persisted."""
        prepared = self.prepare(records)
        stored = None if prepared is None else self.store(prepared)
        return None if prepared is None or stored is None else self.count(prepared, stored)

    def prepare(self, records: Sequence[ConsumedRecord]) -> Prepared | None:
        """Decode the batch and dead-letter its poison; None when stopped before the DLQ had it."""
        started = time.monotonic()
        decoded, poison = decode(records)
        delivered = self._not_applied(decoded)
        if delivered is None:
            return None
        if poison:
            landed = self._retry("dead-letter", lambda: self._dead_letters.send(poison))
            if landed is None:
                return None
            self.stats.dead_lettered += landed  # each record once, when the DLQ first has it
            if landed:
                self._metrics.dead_lettered.inc(landed)
        return Prepared(records, delivered, len(poison), started)

    def forget_applied_marks(self) -> None:
        """Partitions were assigned: read their applied marks again before the next batch."""
        self._applied.clear()

    def _not_applied(self, delivered: list[Delivered]) -> list[Delivered] | None:
        """The votes above their partition's applied mark; None when stopped before it was read.

        A vote at or below the mark was counted, so its record is stored: storing it again costs
        a duplicate-key lookup and changes nothing (tests/chaos/test_pool_nemesis.py).
        """
        unknown = sorted({item.partition for item in delivered} - self._applied.keys())
        if unknown:
            marks = self._retry(
                "counters", lambda: self._counters.applied_marks(self._topic, unknown)
            )
            if marks is None:
                return None
            self._applied.update({partition: marks.get(partition, -1) for partition in unknown})
        fresh = [item for item in delivered if item.offset > self._applied[item.partition]]
        self.stats.already_applied += len(delivered) - len(fresh)
        return fresh

    def store(self, prepared: Prepared) -> Stored | None:
        """The vote log stores the batch (first); None when stopped before it did."""
        if not prepared.delivered:
            return {}
        return self._retry("vote log", lambda: self._vote_log.store(prepared.delivered))

    def count(self, prepared: Prepared, stored: Stored) -> Offsets | None:
        """The counters apply the stored batch (second); the offsets to commit, None if stopped."""
        delivered = prepared.delivered
        counted = 0
        if delivered:
            updates = counter_updates(delivered, stored)
            applied = self._retry("counters", lambda: self._counters.apply(self._topic, updates))
            if applied is None:
                return None
            counted = applied
        self._record(delivered, counted, prepared.dead, time.monotonic() - prepared.started)
        return next_offsets(prepared.records)

    def persist(self, delivered: Sequence[Delivered]) -> int:
        """Vote log first, counters second, without retries: the log decides which copy counts."""
        if not delivered:
            return 0
        stored = self._vote_log.store(delivered)
        return self._counters.apply(self._topic, counter_updates(delivered, stored))

    def _retry(self, step: str, action: Callable[[], T]) -> T | None:
        """Run action until it succeeds (returns its value) or the loop is stopped (None)."""
        delay = BACKOFF_FIRST_S
        failing: Failing | None = None
        try:
            while True:
                try:
                    return action()
                except self._retryable as exc:
                    self.stats.store_failures += 1
                    self._metrics.store_failures.inc(tags={"step": step})
                    error = f"{step}: {type(exc).__name__}: {exc}"
                    self.stats.last_error = error
                    log.warning("%s failed, retrying in %.1fs: %s", step, delay, error)
                    failing = self._stalls.failed(failing, step, error)
                if self._wait(delay):
                    return None
                delay = min(delay * 2, BACKOFF_MAX_S)
        finally:
            self._stalls.ended(failing)

    def _record(
        self, delivered: Sequence[Delivered], counted: int, dead: int, took_s: float
    ) -> None:
        self.stats.batches += 1
        self.stats.persisted += len(delivered)
        self.stats.counted += counted
        metrics = self._metrics
        metrics.batch_size.observe(len(delivered) + dead)
        metrics.persist_latency.observe(took_s)
        for amount, counter in ((len(delivered), metrics.persisted), (counted, metrics.counted)):
            if amount:
                counter.inc(amount)
        now = datetime.now(UTC)
        for item in delivered:
            metrics.end_to_end.observe(max(0.0, (now - item.record.received_at).total_seconds()))
