"""Fakes of the pool's ports for the nemesis test: a Kafka group, a vote log, counters, a DLQ.

Each fake keeps what the real thing guarantees and no more:
- `Cluster`: partition logs with committed offsets, a group with generations, cooperative
  assign and revoke delivered inside `consume()`, position = last returned + 1. Asynchronous
  commits stay on the wire until the nemesis delivers them (in any order) or drops them, except
  that a revoke or a close ends only once the member's commits are answered, as in librdkafka;
  a commit from a member out of the group or of an older generation is refused, as the broker does.
- `FlakyVoteLog`: one document per `_id` (vote_id); it may forget its last acknowledged write,
  as a MongoDB without journaled writes does when it crashes.
- `FlakyCounters`: tests/support/counting_model.py, the reference model of the Redis script.
- `ScheduledStores`: the consume loop's `start_store` seam: a store runs when the nemesis says
  (in any order) or when the loop waits for it.
Failures are `ConnectionError`, which the processor under test treats as retryable.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from serve_app.domain.counting import CounterUpdate, Delivered
from serve_app.pool.ports import Poison
from serve_app.pool.processor import BatchProcessor, Prepared, Stored
from tests.support.counting_model import CountingModel, offset_field
from tests.unit.pool.test_processor import FakeRecord

TOPIC = "votes"
NO_POSITION = -1001  # librdkafka's OFFSET_INVALID: nothing fetched yet
STEADY = '{"cgrp": {"state": "up", "join_state": "steady"}}'
LOST = '{"cgrp": {"state": "query-coord", "join_state": "init"}}'

# A record of a partition log, as the consumer hands it out: the processor tests' fake record.
LogRecord = FakeRecord


@dataclass
class Commit:
    member: FakeConsumer
    generation: int
    offsets: dict[int, int]


class FakeConsumer:
    """The confluent_kafka.Consumer calls the consume loop and its supervisor make."""

    def __init__(self, cluster: Cluster, on_statistics: Callable[[str], None]) -> None:
        self.cluster = cluster
        self.on_statistics = on_statistics
        self.generation = -1
        self.positions: dict[int, int] = {}  # assigned partition -> next offset to hand out
        self.fetched: set[int] = set()  # partitions with a position (something handed out)
        self.to_revoke: set[int] = set()
        self.to_assign: set[int] = set()
        self.in_group = False
        self.stuck = False
        self.closed = False
        self.callbacks: tuple[Callable[..., None], Callable[..., None], Callable[..., None]] | None
        self.callbacks = None

    def subscribe(
        self,
        topics: list[str],
        on_assign: Callable[..., None],
        on_revoke: Callable[..., None],
        on_lost: Callable[..., None],
    ) -> None:
        assert topics == [TOPIC]
        self.callbacks = (on_assign, on_revoke, on_lost)
        self.cluster.join(self)

    def consume(self, count: int, _timeout: float) -> list[LogRecord]:
        if self.closed:
            raise RuntimeError("Consumer closed")
        if self.stuck:
            self.on_statistics(LOST)
            return []
        self.on_statistics(STEADY)
        self.cluster.rebalance(self)
        return self.cluster.fetch(self, count)

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> list[TopicPartition]:
        if self.closed:
            raise RuntimeError("Consumer closed")
        commit = Commit(self, self.generation, {tp.partition: tp.offset for tp in offsets})
        if asynchronous:
            self.cluster.on_the_wire.append(commit)
        elif not self.cluster.apply(commit):
            raise KafkaException(KafkaError(KafkaError.ILLEGAL_GENERATION))
        return offsets

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, p) for p in sorted(self.positions)]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(
                TOPIC,
                tp.partition,
                self.positions[tp.partition] if tp.partition in self.fetched else NO_POSITION,
            )
            for tp in partitions
            if tp.partition in self.positions
        ]

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool) -> tuple[int, int]:
        return 0, len(self.cluster.logs[tp.partition])

    def close(self) -> None:
        """Leaves the group: a last revoke of what it owns first, as librdkafka's close() does."""
        if self.closed:
            return
        if self.in_group and not self.stuck:
            self.cluster.leave(self)
        self.closed = True


class Cluster:
    """One topic's partition logs and one consumer group over them."""

    def __init__(self, partitions: int, rng: random.Random) -> None:
        self.rng = rng
        self.logs: list[list[LogRecord]] = [[] for _ in range(partitions)]
        self.committed: dict[int, int] = {}
        self.generation = 0
        self.members: list[FakeConsumer] = []
        self.owner: dict[int, FakeConsumer] = {}  # the coordinator's view
        self.moving: dict[int, FakeConsumer] = {}  # partition -> the member it goes to once revoked
        self.on_the_wire: list[Commit] = []
        self.refused_commits = 0

    # -- the producers' side --
    def append(self, partition: int, value: bytes | None, key: bytes | None) -> LogRecord:
        log = self.logs[partition]
        record = LogRecord(value, partition, len(log), key)
        log.append(record)
        return record

    # -- the group --
    def join(self, member: FakeConsumer) -> None:
        member.in_group = True
        self.members.append(member)
        self.generation += 1
        for partition in range(len(self.logs)):
            if partition not in self.owner:
                self._give(partition, member)

    def move(self, partition: int, to: FakeConsumer) -> bool:
        """A cooperative rebalance: the owner revokes the partition in its next poll, then `to`
        gets it in a poll of its own. False if nothing is to move."""
        owner = self.owner.get(partition)
        if owner is None or owner is to or partition in self.moving or partition in owner.to_assign:
            return False
        self.generation += 1
        owner.to_revoke.add(partition)
        self.moving[partition] = to
        return True

    def expire(self, member: FakeConsumer) -> None:
        """The member's session timed out (killed, or stuck): its partitions go without a revoke."""
        if not member.in_group:
            return
        member.in_group = False
        self.members.remove(member)
        self.generation += 1
        for partition, owner in list(self.owner.items()):
            if owner is member:
                del self.owner[partition]
                self.moving.pop(partition, None)
        member.to_revoke.clear()
        member.to_assign.clear()
        self.reassign()

    def leave(self, member: FakeConsumer) -> None:
        """A clean leave: revoke everything it owns (inside close(), on the caller's thread)."""
        member.generation = self.generation
        owned = sorted(member.positions)
        if owned and member.callbacks is not None:
            member.callbacks[1](member, [TopicPartition(TOPIC, p) for p in owned])
        self.answer_commits_of(member)
        member.positions.clear()
        self.expire(member)

    def answer_commits_of(self, member: FakeConsumer) -> None:
        """librdkafka ends a revoke (or a close) only once the member's commits in flight are
        answered; one may still be lost on the way."""
        for commit in [c for c in self.on_the_wire if c.member is member]:
            self.on_the_wire.remove(commit)
            if self.rng.random() < 0.9:
                self.apply(commit)

    def reassign(self) -> None:
        """Partitions nobody owns go to a random member."""
        if not self.members:
            return
        for partition in range(len(self.logs)):
            if partition not in self.owner:
                self._give(partition, self.rng.choice(self.members))

    def rebalance(self, member: FakeConsumer) -> None:
        """Inside the member's poll: its new generation, then its revoke and assign callbacks."""
        member.generation = self.generation
        assert member.callbacks is not None
        on_assign, on_revoke, _on_lost = member.callbacks
        if member.to_revoke:
            revoked = sorted(member.to_revoke)
            member.to_revoke.clear()
            on_revoke(member, [TopicPartition(TOPIC, p) for p in revoked])
            self.answer_commits_of(member)
            for partition in revoked:
                member.positions.pop(partition, None)
                member.fetched.discard(partition)
                del self.owner[partition]
                target = self.moving.pop(partition, None)
                self.generation += 1
                self._give(partition, target if target is not None and target.in_group else None)
            member.generation = self.generation
        if member.to_assign:
            assigned = sorted(member.to_assign)
            member.to_assign.clear()
            for partition in assigned:
                member.positions[partition] = self.committed.get(partition, 0)
                member.fetched.discard(partition)
            on_assign(member, [TopicPartition(TOPIC, p) for p in assigned])

    def _give(self, partition: int, member: FakeConsumer | None) -> None:
        if member is None:
            self.reassign()
            return
        self.owner[partition] = member
        member.to_assign.add(partition)

    def fetch(self, member: FakeConsumer, count: int) -> list[LogRecord]:
        records: list[LogRecord] = []
        partitions = sorted(member.positions)
        self.rng.shuffle(partitions)
        for partition in partitions:
            start = member.positions[partition]
            taken = self.logs[partition][start : start + count - len(records)]
            if taken:
                records.extend(taken)
                member.positions[partition] = start + len(taken)
                member.fetched.add(partition)
        return records

    # -- commits --
    def apply(self, commit: Commit) -> bool:
        """The broker takes a commit from a member of the group's current generation only."""
        if not commit.member.in_group or commit.generation != self.generation:
            self.refused_commits += 1
            return False
        self.committed.update(commit.offsets)
        return True

    def deliver(self, index: int) -> None:
        if self.on_the_wire:
            self.apply(self.on_the_wire.pop(index % len(self.on_the_wire)))

    def drop(self, index: int) -> None:
        if self.on_the_wire:
            self.on_the_wire.pop(index % len(self.on_the_wire))


@dataclass
class FlakyVoteLog:
    """The vote log: one document per vote_id; fails its next `failures` stores."""

    may_forget: bool = False
    held: dict[str, tuple[int, int]] = field(default_factory=dict)
    inserts: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0  # stores of a vote_id already held: a lookup each
    failures: int = 0
    last_write: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)

    def store(self, batch: Sequence[Delivered]) -> Mapping[str, tuple[int, int]]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("vote log unreachable")
        written = []
        for item in batch:
            vote_id = item.record.vote_id
            if vote_id in self.held:
                self.duplicates += 1
                continue
            self.held[vote_id] = item.position
            self.inserts[vote_id] += 1
            written.append(vote_id)
        if written:
            self.last_write = written
        return {item.record.vote_id: self.held[item.record.vote_id] for item in batch}

    def forget_last_write(self) -> None:
        """A crash loses the last acknowledged write, unless writes are journaled."""
        if not self.may_forget:
            return
        for vote_id in self.last_write:
            if self.held.pop(vote_id, None) is not None:
                self.forgotten.append(vote_id)
        self.last_write = []


@dataclass
class FlakyCounters(CountingModel):
    """The counting model, failing its next `failures` calls; records which positions counted."""

    failures: int = 0
    counted_positions: set[tuple[int, int]] = field(default_factory=set)
    counted_ids: Counter[str] = field(default_factory=Counter)

    def apply(self, topic: str, updates: Iterable[CounterUpdate]) -> int:
        self._maybe_fail()
        updates = list(updates)
        for update in updates:
            mark = self.applied_offsets.get(offset_field(topic, update.partition), -1)
            if update.counts and update.offset > mark:
                self.counted_positions.add((update.partition, update.offset))
                self.counted_ids[update.vote_id] += 1
        return super().apply(topic, updates)

    def applied_marks(self, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        self._maybe_fail()
        return super().applied_marks(topic, partitions)

    def mark(self, partition: int) -> int:
        return self.applied_offsets.get(offset_field(TOPIC, partition), -1)

    def _maybe_fail(self) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("counters unreachable")


@dataclass
class FlakyDeadLetters:
    failures: int = 0
    sent: list[tuple[int, int]] = field(default_factory=list)

    def send(self, poison: Sequence[Poison]) -> int:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("dead-letter topic unreachable")
        self.sent.extend((p.record.partition(), p.record.offset()) for p in poison)
        return len(poison)

    def close(self) -> None:
        return None


class ScheduledStore:
    """A store that runs when the nemesis finishes it, or when the loop waits for its result."""

    def __init__(
        self, owner: ScheduledStores, processor: BatchProcessor, prepared: Prepared
    ) -> None:
        self.prepared = prepared
        self._owner = owner
        self._processor = processor
        self._ran = False
        self._stored: Stored | None = None

    def run(self) -> None:
        if not self._ran:
            self._ran = True
            self._owner.pending.remove(self)
            self._stored = self._processor.store(self.prepared)

    def drop(self) -> None:
        """The process was killed before this write reached the vote log."""
        if not self._ran:
            self._ran = True
            self._owner.pending.remove(self)

    def done(self) -> bool:
        return self._ran

    def result(self) -> Stored | None:
        self.run()
        return self._stored


@dataclass
class ScheduledStores:
    """The `start_store` of every loop in the test: the stores not run yet, of all loops."""

    pending: list[ScheduledStore] = field(default_factory=list)
    most_at_once: int = 0  # the most stores of one processor pending together

    def start(self, processor: BatchProcessor, prepared: Prepared) -> ScheduledStore:
        store = ScheduledStore(self, processor, prepared)
        self.pending.append(store)
        at_once = sum(1 for s in self.pending if s._processor is processor)
        self.most_at_once = max(self.most_at_once, at_once)
        return store

    def of(self, processor: BatchProcessor) -> list[ScheduledStore]:
        return [s for s in self.pending if s._processor is processor]
