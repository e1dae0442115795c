"""What one consumer of the pool did so far: read by `VotePersister.stats()`, health and
autoscaling."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PersisterStats:
    """Written by the consume loop's parts (processor, supervisor, lag refresh), on its one
    thread."""

    batches: int = 0
    persisted: int = 0  # records stored (including clients' duplicates, excluding DLQ)
    counted: int = 0
    dead_lettered: int = 0
    already_applied: int = 0  # redelivered votes at or below the applied mark: not stored again
    store_failures: int = 0
    last_error: str | None = None
    assigned: list[int] = field(default_factory=list)
    lag: dict[int, int] = field(default_factory=dict)  # partition -> records behind
    consumers_replaced: int = 0  # by the supervisor, when GroupWatch says stuck
    stalled: str | None = None  # a step failing past the stall limit: the replica is unhealthy

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())
