"""How long the batch processor's steps have been failing: past a limit the replica is unhealthy.

The processor retries a failing step (dead-letter, vote log, counters) with backoff and skips
nothing, so a batch that fails the same way every time would be retried for good, its partition
stalled behind it, while the replica looked healthy; with 7 days of retention, a stall nobody sees
for a week loses votes. Once one step has failed for STALL_LIMIT_S without a success, the watch
says so in one error line and in the `votes_persist_stalls` metric, and `stats.stalled` says why,
which fails the replica's health check: Serve replaces the replica, and the new one resumes from
the last commit (docs/decisions/0021-dead-letters-once.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from serve_app.metrics import PersistMetrics
from serve_app.pool.stats import PersisterStats

log = logging.getLogger("ray.serve").getChild(__name__)

# Rides out a broker or store restart (the chaos suite's outages last 5-20 s) and equals the
# consumer's max.poll.interval.ms, after which Kafka moves a silent consumer's partitions anyway.
STALL_LIMIT_S = 300.0


@dataclass(eq=False)
class Failing:
    """One retry of a step, from its first failure on."""

    step: str
    since: float
    error: str = ""
    reported: bool = False


class StallWatch:
    """Tracks the steps being retried (up to one per thread: the loop's and the stores')."""

    def __init__(
        self,
        stats: PersisterStats,
        metrics: PersistMetrics,
        limit_s: float = STALL_LIMIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit_s = limit_s
        self._stats = stats
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._failing: set[Failing] = set()

    def failed(self, failing: Failing | None, step: str, error: str) -> Failing:
        """Note a failure of `step` (`failing`: this retry's earlier ones); past the limit, say
        so."""
        now = self._clock()
        with self._lock:
            if failing is None:
                failing = Failing(step, now)
                self._failing.add(failing)
            failing.error = error
            stalled_s = now - failing.since
            if failing.reported or stalled_s < self.limit_s:
                return failing
            failing.reported = True
            self._stats.stalled = f"failing for {stalled_s:.0f}s, last: {error}"
        self._metrics.persist_stalls.inc(tags={"step": step})
        log.error(
            "%s has failed for %.0fs without a success (limit %.0fs), last: %s; failing the "
            "health check so that Serve replaces this replica",
            step,
            stalled_s,
            self.limit_s,
            error,
        )
        return failing

    def ended(self, failing: Failing | None) -> None:
        """The retry ended (succeeded or stopped): the replica is healthy unless another stalls."""
        if failing is None:
            return
        now = self._clock()
        with self._lock:
            self._failing.discard(failing)
            stalled = [f for f in self._failing if f.reported]
            oldest = min(stalled, key=lambda f: f.since) if stalled else None
            self._stats.stalled = (
                None
                if oldest is None
                else (f"failing for {now - oldest.since:.0f}s, last: {oldest.error}")
            )
        if failing.reported:
            log.warning(
                "%s no longer stalled: its retry ended after %.0fs",
                failing.step,
                now - failing.since,
            )
