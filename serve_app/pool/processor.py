"""One consumed batch -> dead-letter sink, vote log, counters; returns the offsets to commit.

    decode each record; undecodable ones go to the dead-letter sink with the reason
      -> vote log: store the votes by vote_id (it says which record of each vote it holds)
      -> counters: apply the counts and the partitions' offsets atomically
      -> the next offset per partition, for the consume loop to commit
    a step failing: retry that step with backoff, skip nothing; stopped meanwhile: commit nothing

The retry lives here, per step, rather than in the consume loop: a batch whose store fails after
its poison records were dead-lettered retries the store alone, so each poison record is produced
to the DLQ once. The stores come in through `serve_app.pool.ports`; nothing here builds a client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from serve_app.domain.counting import Delivered, counter_updates
from serve_app.domain.votes import RecordError, decode_record
from serve_app.metrics import PersistMetrics
from serve_app.pool.ports import ConsumedRecord, Counters, DeadLetterSink, Offsets, Poison, VoteLog
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
    ) -> None:
        """`retryable`: the store failures worth retrying; `wait(s)`: sleep, True when stopped."""
        self._topic = topic
        self._vote_log = vote_log
        self._counters = counters
        self._dead_letters = dead_letters
        self._retryable = retryable
        self._wait = wait
        self.stats = stats or PersisterStats()
        self._metrics = metrics or PersistMetrics()

    def process(self, records: Sequence[ConsumedRecord]) -> Offsets | None:
        """Persist one batch; the offsets to commit, or None when stopped before it was persisted."""
        started = time.monotonic()
        delivered, poison = decode(records)
        if poison and self._retry("dead-letter", lambda: self._dead_letters.send(poison)) is None:
            return None
        counted = self._retry("persist", lambda: self.persist(delivered))
        if counted is None:
            return None
        self._record(delivered, counted, len(poison), time.monotonic() - started)
        return next_offsets(records)

    def persist(self, delivered: Sequence[Delivered]) -> int:
        """Vote log first, counters second: the log decides which copy of a vote counts."""
        if not delivered:
            return 0
        stored = self._vote_log.store(delivered)
        return self._counters.apply(self._topic, counter_updates(delivered, stored))

    def _retry(self, step: str, action: Callable[[], T]) -> T | None:
        """Run action until it succeeds (returns its value) or the loop is stopped (None)."""
        delay = BACKOFF_FIRST_S
        while True:
            try:
                return action()
            except self._retryable as exc:
                self.stats.store_failures += 1
                self._metrics.store_failures.inc(tags={"step": step})
                self.stats.last_error = f"{step}: {type(exc).__name__}: {exc}"
                log.warning("%s failed, retrying in %.1fs: %s", step, delay, self.stats.last_error)
            if self._wait(delay):
                return None
            delay = min(delay * 2, BACKOFF_MAX_S)

    def _record(self, delivered: Sequence[Delivered], counted: int, dead: int, took_s: float) -> None:
        self.stats.batches += 1
        self.stats.persisted += len(delivered)
        self.stats.counted += counted
        self.stats.dead_lettered += dead
        metrics = self._metrics
        metrics.batch_size.observe(len(delivered) + dead)
        metrics.persist_latency.observe(took_s)
        for amount, counter in ((len(delivered), metrics.persisted), (counted, metrics.counted),
                                (dead, metrics.dead_lettered)):
            if amount:
                counter.inc(amount)
        now = datetime.now(UTC)
        for item in delivered:
            metrics.end_to_end.observe(max(0.0, (now - item.record.received_at).total_seconds()))
