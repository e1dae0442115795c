"""How votes are counted, exactly once, over an at-least-once Kafka log. Pure functions, no I/O.

Two kinds of duplicates reach the consumer, and each has its own guard:

1. Redelivery of the same Kafka record (a crash before the offset commit, a rebalance). Guarded by
   the Redis counter script: per partition it remembers the last offset it applied and skips
   records at or below it, atomically with the increments.
2. The same vote sent twice by a client (a retry with the same vote_id): two records, two offsets.
   Guarded by the vote log: MongoDB stores one document per vote_id and remembers which record
   (partition, offset) was stored. Only that record is counted; any other copy is not.

So a record counts iff it is the stored record of its vote_id and its offset is new to Redis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, field_serializer

from serve_app.domain.votes import VoteRecord, format_timestamp


@dataclass(frozen=True)
class Delivered:
    """A vote record together with where Kafka delivered it from."""

    record: VoteRecord
    topic: str
    partition: int
    offset: int

    @property
    def position(self) -> tuple[int, int]:
        return (self.partition, self.offset)


class CounterUpdate(NamedTuple):
    """One record's effect on the counters, as the Redis script applies it.

    A NamedTuple, in the order of the script's rows: built per vote, it costs a third of a
    frozen dataclass (docs/decisions/0014-pool-per-vote-cost.md).
    """

    partition: int
    offset: int
    counts: bool  # False: a client's duplicate; only the partition's offset advances
    band: str
    album: str
    year: int
    rank: int
    second: int  # received_at as epoch seconds, for the per-second rate series
    vote_id: str
    received_at: str  # ISO-8601, for the recent-votes list


def counter_updates(
    delivered: Iterable[Delivered], stored_positions: Mapping[str, tuple[int, int]]
) -> list[CounterUpdate]:
    """Decide which delivered records count: those the vote log stored for their vote_id.

    `stored_positions` maps vote_id -> (partition, offset) of the record the vote log holds.
    A vote_id missing from it was not stored, which the caller must never let happen; it is
    treated as not counting, so a bug shows as a missing count rather than a double one.
    """
    updates = []
    moment: datetime | None = None
    second, stamp = 0, ""
    for item in delivered:
        record = item.record
        if record.received_at != moment:  # the votes of a batch request share their moment
            moment = record.received_at
            second, stamp = int(moment.timestamp()), format_timestamp(moment)
        updates.append(
            CounterUpdate(
                item.partition,
                item.offset,
                stored_positions.get(record.vote_id) == (item.partition, item.offset),
                record.name,
                record.album,
                record.year,
                record.rank,
                second,
                record.vote_id,
                stamp,
            )
        )
    return updates


# The one results model: GET /results answers with it (its response_model), the live page sends
# it, and serve_app/read/read_side.py's `results_to_proto` makes the GetResults reply of it.
class Results(BaseModel):
    """Counts of persisted votes by band, album, year and rank, and when they were read."""

    model_config = ConfigDict(frozen=True)

    total: int
    by_band: dict[str, int]
    by_album: dict[str, int]
    by_year: dict[str, int]
    by_rank: dict[str, int]
    as_of: datetime

    @field_serializer("as_of")
    def _as_of(self, as_of: datetime) -> str:
        # The API's one timestamp format: ISO-8601 in UTC with milliseconds and a Z.
        return format_timestamp(as_of)
