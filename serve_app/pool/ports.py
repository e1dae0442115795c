"""The pool's ports: what the batch processor needs of a consumed record and of its stores.

The adapters are `serve_app.stores` (vote log, counters) and `serve_app.pool.dead_letters`; the
unit tests use plain fakes of these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from serve_app.domain.counting import CounterUpdate, Delivered

# (topic, partition) -> the next offset to read, i.e. what the consumer commits.
Offsets = dict[tuple[str, int], int]


class ConsumedRecord(Protocol):
    """What the pool reads of a consumed Kafka record (a confluent_kafka.Message without error)."""

    def value(self) -> bytes | None: ...

    def key(self) -> bytes | None: ...

    def headers(self) -> list[tuple[str, bytes]] | None: ...

    def topic(self) -> str: ...

    def partition(self) -> int: ...

    def offset(self) -> int: ...


@dataclass(frozen=True)
class Poison:
    """A consumed record that is not a vote record, and why."""

    record: ConsumedRecord
    reason: str


class VoteLog(Protocol):
    def store(self, batch: Sequence[Delivered]) -> Mapping[str, tuple[int, int]]:
        """Store the votes once each; return vote_id -> (partition, offset) of the stored record.

        A vote_id stored before keeps its first record: the caller learns that this copy is not
        the one that counts. Raises on a store failure, so the caller retries the batch.
        """
        ...


class Counters(Protocol):
    def apply(self, topic: str, updates: Sequence[CounterUpdate]) -> int:
        """Apply the updates atomically, skipping offsets already applied; return how many
        counted."""
        ...

    def applied_marks(self, topic: str, partitions: Sequence[int]) -> Mapping[int, int]:
        """Partition -> the last offset applied of it; a partition never applied is left out."""
        ...


class DeadLetterSink(Protocol):
    def send(self, poison: Sequence[Poison]) -> int:
        """Hand the records over durably (or raise); return how many were not handed over before.

        A record handed over before (its batch redelivered) is not sent again and not counted.
        """
        ...
