"""How much write work one ingress replica takes on at once: the bounded queue in front of Kafka.

The budget counts the bytes of the write bodies (HTTP) and messages (gRPC) a replica is working on;
past its limit a request is shed at once with 503 + Retry-After / RESOURCE_EXHAUSTED. Why bytes,
and why a limit that follows latency: docs/decisions/0007-write-budget.md. The rule, against
`latency_target_s`, for the time a write took from reaching the replica to its answer:
- a write that took longer than the target cuts the limit in proportion (2x the target: half
  the limit), once per round: only a write admitted after the last cut can cut it again;
- a write that took under half the target grows the limit by its own size, so a limit roughly
  doubles per round while the replica keeps up, up to `max_bytes`;
- the limit never goes below `min_bytes`, and an idle replica admits any one request.
Pure bookkeeping on the replica's event loop: no locks, no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from serve_app.settings import DEFAULT_WRITE_BYTES_IN_FLIGHT, DEFAULT_WRITE_LATENCY_TARGET_S

# A batch hands the event loop back every this many records (docs/decisions/0007-write-budget.md),
# so health checks and the answers to shed requests do not wait behind a whole batch.
YIELD_EVERY_RECORDS = 100
# ~4 batches of 1000 votes or ~2,500 single votes: below this the limit never goes, so a
# replica that had one slow spell (a stalled Kafka ack) still takes a normal stream.
MIN_WRITE_BYTES_IN_FLIGHT = 256 * 1024


@dataclass(frozen=True)
class Admission:
    """One admitted write: its size and when it reached the replica."""

    size: int
    arrived: float


class WriteBudget:
    """Bytes of write requests in flight on this replica, against a limit that follows latency."""

    def __init__(
        self,
        max_bytes: int = DEFAULT_WRITE_BYTES_IN_FLIGHT,
        latency_target_s: float = DEFAULT_WRITE_LATENCY_TARGET_S,
        retry_after_s: int = 1,
        min_bytes: int = MIN_WRITE_BYTES_IN_FLIGHT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.in_flight = 0
        self.max_bytes = max_bytes
        self.min_bytes = min(min_bytes, max_bytes)
        self.latency_target_s = latency_target_s
        self.retry_after_s = retry_after_s  # what a shed client is told to wait
        self.limit = max_bytes  # starts at the maximum
        self._last_cut = float("-inf")

    def admit(self, size: int, arrived: float | None = None) -> Admission | None:
        """Take `size` bytes of the budget, or None: shed the write. `arrived` is when the
        request reached the replica (default: now); its whole time there is what counts."""
        if self.in_flight and self.in_flight + size > self.limit:
            return None
        self.in_flight += size
        return Admission(size, self.clock() if arrived is None else arrived)

    def release(self, admission: Admission) -> None:
        """The write ended (answered or failed): free its bytes and learn from its latency."""
        self.in_flight = max(0, self.in_flight - admission.size)
        now = self.clock()
        took = now - admission.arrived
        if took > self.latency_target_s:
            if admission.arrived >= self._last_cut:  # it saw the last cut: the cut was not enough
                self.limit = max(self.min_bytes, int(self.limit * self.latency_target_s / took))
                self._last_cut = now
        elif took < self.latency_target_s / 2:
            self.limit = min(self.max_bytes, self.limit + admission.size)

    def describe(self) -> str:
        return (
            f"this replica is busy with {self.in_flight} bytes of votes "
            f"(at most {self.limit} now); retry shortly"
        )
