"""How much write work one ingress replica takes on at once: the bounded queue in front of Kafka.

Serve bounds requests (`max_ongoing_requests`, `max_queued_requests`), but a request can carry
one vote or a thousand. Under overload every admitted batch shares the same CPU, so without a
bound on the votes themselves all of them slow down together: 250 batches of 1000 at once took
50 s each on 2 cores. The budget counts the bytes of the write bodies (HTTP) and messages (gRPC)
a replica is working on; past it a request is shed at once with 503 + Retry-After /
RESOURCE_EXHAUSTED, and the ones admitted finish in a few seconds. Single votes (~100 bytes)
never reach it. Pure bookkeeping on the replica's event loop: no locks, no I/O.
"""

from __future__ import annotations

DEFAULT_WRITE_BYTES_IN_FLIGHT = 2 * 1024 * 1024


class WriteBudget:
    """Bytes of write requests in flight on this replica, against a maximum."""

    def __init__(self, max_bytes: int = DEFAULT_WRITE_BYTES_IN_FLIGHT, retry_after_s: int = 1) -> None:
        self.max_bytes = max_bytes
        self.retry_after_s = retry_after_s  # what a shed client is told to wait
        self.in_flight = 0

    def admit(self, size: int) -> bool:
        """Take `size` bytes of the budget, or say no. An idle replica admits any request, so
        a request as large as the body limit is never refused for good."""
        if self.in_flight and self.in_flight + size > self.max_bytes:
            return False
        self.in_flight += size
        return True

    def release(self, size: int) -> None:
        self.in_flight = max(0, self.in_flight - size)

    def describe(self) -> str:
        return (f"this replica is busy with {self.in_flight} bytes of votes "
                f"(at most {self.max_bytes}); retry shortly")
