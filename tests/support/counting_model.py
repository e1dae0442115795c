"""The Redis counter script's rules in memory, as a reference model for tests.

serve_app/stores/redis_counts.py's APPLY_BATCH_LUA is the real thing; this model does what it
does to the counters and the applied offsets, so that unit tests can reason about counting
without Redis, and tests/integration/test_counting_model.py checks that the two agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from serve_app.domain.counting import CounterUpdate

RECENT_KEEP = 100  # serve_app.stores.redis_counts.RECENT_KEEP


def offset_field(topic: str, partition: int) -> str:
    """The votes:applied_offsets field of a partition, as the script writes it."""
    return f"{topic}:{partition}"


@dataclass
class CountingModel:
    """Counters and applied offsets, changed by batches as APPLY_BATCH_LUA changes them."""

    total: int = 0
    by_band: Counter[str] = field(default_factory=Counter)
    by_album: Counter[str] = field(default_factory=Counter)
    by_year: Counter[str] = field(default_factory=Counter)
    by_rank: Counter[str] = field(default_factory=Counter)
    # Epoch second of received_at -> votes (votes:per_second; the model prunes nothing).
    per_second: Counter[str] = field(default_factory=Counter)
    # "topic:partition" -> the last offset applied (votes:applied_offsets).
    applied_offsets: dict[str, int] = field(default_factory=dict)
    # The latest counted votes as GET /votes/recent shows them, newest first (votes:recent).
    recent: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, topic: str, updates: Iterable[CounterUpdate]) -> int:
        """Apply one batch of `topic`; returns how many votes counted (0 for a replay)."""
        counted = 0
        highest: dict[str, int] = {}
        for update in updates:
            where = offset_field(topic, update.partition)
            # Offsets are compared with those applied before the batch, as the script does.
            if update.offset <= self.applied_offsets.get(where, -1):
                continue
            highest[where] = max(highest.get(where, -1), update.offset)
            if update.counts:
                counted += 1
                self.by_band[update.band] += 1
                self.by_album[update.album] += 1
                self.by_year[str(update.year)] += 1
                self.by_rank[str(update.rank)] += 1
                self.per_second[str(update.second)] += 1
                self.recent.insert(
                    0,
                    {
                        "vote_id": update.vote_id,
                        "name": update.band,
                        "album": update.album,
                        "year": update.year,
                        "rank": update.rank,
                        "received_at": update.received_at,
                    },
                )
        del self.recent[RECENT_KEEP:]
        self.applied_offsets.update(highest)
        self.total += counted
        return counted

    def applied_marks(self, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """Partition -> the last offset applied (RedisCounts.applied_marks); never applied:
        absent."""
        marks = {p: self.applied_offsets.get(offset_field(topic, p)) for p in partitions}
        return {p: mark for p, mark in marks.items() if mark is not None}
