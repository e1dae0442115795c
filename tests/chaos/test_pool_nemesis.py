"""A randomized nemesis for the pool: the real ConsumeLoop and BatchProcessor against fakes.

Hypothesis draws a schedule of steps: votes, clients' retries (same vote_id, a new record) and
poison records produced; loops polling; stores ending in any order; asynchronous commits
delivered out of order or dropped; store, counter and DLQ failures; replicas SIGKILLed (no close)
or stopped; cooperative rebalances; a consumer stuck outside its group and replaced; and, in its
own test, a vote log that forgets its last acknowledged write (tests/chaos/nemesis.py has the
fakes).

After every step, per partition: the counters' applied mark is below the first record that is not
settled yet (a vote stored, and counted if it is the stored copy; a poison record in the DLQ),
and the committed offset is at most that record's offset (the next offset to read). At the end,
after healing and draining: every accepted vote_id is counted once and stored once, and every
poison record is in the DLQ.

`make test` runs EXAMPLES schedules, the same ones each time; `make chaos` (VOTES_CHAOS_FULL=1)
runs ten times as many, new ones each time. Two deliberately broken loops prove it can fail.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from serve_app.domain.votes import Vote, accept, encode_record
from serve_app.metrics import PersistMetrics
from serve_app.pool.clients import new_mongo
from serve_app.pool.commits import commit_positions
from serve_app.pool.consume_loop import ConsumeLoop
from serve_app.pool.processor import BatchProcessor, Prepared
from serve_app.pool.stats import PersisterStats
from serve_app.pool.store_ahead import InFlightStore
from serve_app.pool.supervision import GROUP_STUCK_S, ConsumerSupervisor
from serve_app.settings import Settings
from tests.chaos.nemesis import (
    TOPIC,
    Cluster,
    FakeConsumer,
    FlakyCounters,
    FlakyDeadLetters,
    FlakyVoteLog,
    ScheduledStores,
)

FULL = os.environ.get("VOTES_CHAOS_FULL") == "1"
EXAMPLES = 2000 if FULL else 200
STEPS_MIN = 20
STEPS_MAX = 80
PARTITIONS = 3
REPLICAS_MAX = 3
POLL_S = 0.25  # fake time per poll
DRAIN_ROUNDS = 400
POISON = (b"not json at all", b'{"vote_id": "x"}', None)
STEPS = (
    "produce",
    "produce",
    "produce",
    "retry",
    "poison",
    "poll",
    "poll",
    "poll",
    "poll",
    "poll",
    "poll",
    "finish_store",
    "finish_store",
    "deliver_commit",
    "deliver_commit",
    "drop_commit",
    "fail_store",
    "fail_count",
    "fail_dlq",
    "kill",
    "stop",
    "start",
    "start",
    "move",
    "move",
    "stick",
    "stick",
    "expire",
    "tick",
    "tick",
    "backlog",
)


@pytest.fixture(autouse=True)
def quiet_pool_logs() -> Iterator[None]:
    """Thousands of scheduled failures: their retry warnings would bury a failure's report."""
    pool_log = logging.getLogger("ray.serve.serve_app.pool")
    level = pool_log.level
    pool_log.setLevel(logging.ERROR)
    yield
    pool_log.setLevel(level)


def vote_log_journaled() -> bool:
    """Whether the pool's MongoDB client asks for journaled writes (built, never connected)."""
    client = new_mongo(Settings())
    try:
        return client.write_concern.document.get("j") is True
    finally:
        client.close()


@dataclass
class Replica:
    """One pool replica: a real consume loop and processor over the fakes."""

    loop: ConsumeLoop
    processor: BatchProcessor
    stop: threading.Event


class World:
    """The fakes, the replicas and the nemesis's steps; `check` is the invariant."""

    def __init__(
        self,
        seed: int,
        batch_max: int,
        loop_class: type[ConsumeLoop],
        vote_log_may_forget: bool,
        tally: Counter[str],
    ) -> None:
        self.rng = random.Random(seed)
        self.cluster = Cluster(PARTITIONS, self.rng)
        self.vote_log = FlakyVoteLog(may_forget=vote_log_may_forget)
        self.counters = FlakyCounters()
        self.dead_letters = FlakyDeadLetters()
        self.stores = ScheduledStores()
        self.batch_max = batch_max
        self.loop_class = loop_class
        self.tally = tally
        self.now = 1000.0
        self.metrics = PersistMetrics()
        self.replicas: list[Replica] = []
        self.all_stats: list[PersisterStats] = []
        self.accepted: dict[str, bytes] = {}  # vote_id -> its record's value
        self.poison: set[tuple[int, int]] = set()
        self.start_replica()

    def clock(self) -> float:
        return self.now

    # -- the steps --
    def step(self, kind: str, arg: int) -> None:
        getattr(self, "_" + kind)(arg)

    def _produce(self, arg: int) -> None:
        for i in range(1 + arg % 3):
            vote_id = f"v{len(self.accepted)}"
            vote = Vote(
                name=f"band {arg % 4}", album="Alux Nahual", year=1983, rank=1 + i, vote_id=vote_id
            )
            value = encode_record(accept(vote, "http")).value
            self.accepted[vote_id] = value
            self.cluster.append(self._partition_of(vote_id), value, vote_id.encode())

    def _retry(self, arg: int) -> None:
        if self.accepted:
            vote_id = sorted(self.accepted)[arg % len(self.accepted)]
            # Keyed by vote_id: the retry lands on the partition of the first attempt.
            self.cluster.append(
                self._partition_of(vote_id), self.accepted[vote_id], vote_id.encode()
            )

    def _poison(self, arg: int) -> None:
        record = self.cluster.append(arg % PARTITIONS, POISON[arg % len(POISON)], None)
        self.poison.add((record.partition_no, record.offset_no))

    def _poll(self, arg: int) -> None:
        if self.replicas:
            self.poll(self.replicas[arg % len(self.replicas)])

    def _finish_store(self, arg: int) -> None:
        if self.stores.pending:
            self.stores.pending[arg % len(self.stores.pending)].run()

    def _deliver_commit(self, arg: int) -> None:
        self.cluster.deliver(arg)

    def _drop_commit(self, arg: int) -> None:
        self.cluster.drop(arg)

    def _fail_store(self, arg: int) -> None:
        self.vote_log.failures = 1 + arg % 3

    def _fail_count(self, arg: int) -> None:
        self.counters.failures = 1 + arg % 3

    def _fail_dlq(self, arg: int) -> None:
        self.dead_letters.failures = 1 + arg % 3

    def _kill(self, arg: int) -> None:
        """SIGKILL: no close; the writes already on the wire land or not; the session lingers."""
        if self.replicas:
            replica = self.replicas.pop(arg % len(self.replicas))
            self._writes_in_flight_land_or_not(replica, arg)

    def _stop(self, arg: int) -> None:
        """A graceful stop: the loop's run() ends, closing the consumer (a last revoke)."""
        if not self.replicas:
            return
        if arg & 2:  # the replica with the most batches in hand
            replica = max(self.replicas, key=lambda r: len(r.loop._storing))
            self.replicas.remove(replica)
        else:
            replica = self.replicas.pop(arg % len(self.replicas))
        replica.loop.stop()
        if arg & 1:  # the stop came during an iteration, in an outage: its retries end at once
            if arg & 4:
                self.vote_log.failures = max(self.vote_log.failures, 1)
            else:
                self.counters.failures = max(self.counters.failures, 1)
            self.poll(replica)
        replica.loop.close()
        self._writes_in_flight_land_or_not(replica, arg)

    def _backlog(self, arg: int) -> None:
        """A burst of votes and two polls: full batches, two stores in flight."""
        for _ in range(2 * self.batch_max):
            self._produce(0)
        if self.replicas:
            replica = self.replicas[arg % len(self.replicas)]
            self.poll(replica)
            self.poll(replica)

    def _start(self, _arg: int) -> None:
        if len(self.replicas) < REPLICAS_MAX:
            self.start_replica()

    def _move(self, arg: int) -> None:
        """A cooperative rebalance: a partition goes from its owner to another live consumer."""
        targets = [r.loop.supervisor.consumer for r in self.replicas]
        targets = [c for c in targets if isinstance(c, FakeConsumer) and c.in_group]
        if targets:
            self.cluster.move(arg % PARTITIONS, targets[arg % len(targets)])

    def _stick(self, arg: int) -> None:
        """The consumer loses its group session for good and never notices (decision 0003)."""
        if self.replicas:
            consumer = self.replicas[arg % len(self.replicas)].loop.supervisor.consumer
            assert isinstance(consumer, FakeConsumer)
            consumer.stuck = True
            self.cluster.expire(consumer)

    def _expire(self, arg: int) -> None:
        """The session of a killed replica's consumer times out."""
        live = {id(r.loop.supervisor.consumer) for r in self.replicas}
        dead = [m for m in self.cluster.members if id(m) not in live]
        if dead:
            self.cluster.expire(dead[arg % len(dead)])

    def _tick(self, arg: int) -> None:
        self.now += 10 + arg % (2 * GROUP_STUCK_S)

    def _forget(self, _arg: int) -> None:
        self.vote_log.forget_last_write()

    # -- replicas --
    def start_replica(self) -> Replica:
        stop = threading.Event()
        stats = PersisterStats()
        self.all_stats.append(stats)
        supervisor = ConsumerSupervisor(
            TOPIC,
            lambda on_statistics: FakeConsumer(self.cluster, on_statistics),
            stats,
            clock=self.clock,
        )
        processor = BatchProcessor(
            TOPIC,
            self.vote_log,
            self.counters,
            self.dead_letters,
            retryable=(ConnectionError,),
            wait=lambda _s: stop.is_set(),
            stats=stats,
            metrics=self.metrics,
        )
        loop = self.loop_class(
            supervisor,
            processor,
            self.dead_letters,  # type: ignore[arg-type]  # the nemesis's fake DLQ sink
            stop,
            self.metrics,
            batch_max_records=self.batch_max,
            clock=self.clock,
            start_store=self.stores.start,
        )
        revoke = supervisor.before_revoke

        def before_revoke(consumer: object, partitions: list[object]) -> None:
            if loop._storing:
                self.tally["a revoke finished batches in hand"] += 1
            revoke(consumer, partitions)  # type: ignore[arg-type]  # the fakes stand in for Consumer and TopicPartition

        supervisor.before_revoke = before_revoke  # type: ignore[assignment]  # a wrapper over the fakes
        replica = Replica(loop, processor, stop)
        self.replicas.append(replica)
        supervisor.subscribe()
        return replica

    def poll(self, replica: Replica) -> None:
        replica.loop._poll_once()
        self.now += POLL_S

    def _writes_in_flight_land_or_not(self, replica: Replica, arg: int) -> None:
        for i, store in enumerate(self.stores.of(replica.processor)):
            if (arg >> i) & 1:
                store.run()
            else:
                store.drop()

    # -- the invariant --
    def settled(self, partition: int, offset: int) -> bool:
        """A poison record is in the DLQ; a vote is stored, and counted if it is the stored copy."""
        if (partition, offset) in self.poison:
            return (partition, offset) in self.dead_letters.sent
        record = self.cluster.logs[partition][offset]
        assert record.key_bytes is not None
        held = self.vote_log.held.get(record.key_bytes.decode())
        return held is not None and (
            held != (partition, offset) or (partition, offset) in self.counters.counted_positions
        )

    def first_unsettled(self, partition: int) -> int:
        log = self.cluster.logs[partition]
        return next((o for o in range(len(log)) if not self.settled(partition, o)), len(log))

    def why(self, partition: int, offset: int) -> str:
        if (partition, offset) in self.poison:
            return "a poison record not in the DLQ"
        key = self.cluster.logs[partition][offset].key_bytes
        vote_id = key.decode() if key else "?"
        if vote_id in self.vote_log.forgotten:
            return (
                f"vote {vote_id}: the vote log forgot an acknowledged write of it (the pool's "
                "MongoDB client does not ask for journaled writes, j=True)"
            )
        if vote_id not in self.vote_log.held:
            return f"vote {vote_id} is not stored"
        return f"vote {vote_id}: the stored copy {self.vote_log.held[vote_id]} is not counted"

    def check(self, after: str) -> None:
        for partition in range(PARTITIONS):
            first = self.first_unsettled(partition)
            mark = self.counters.mark(partition)
            assert mark < first, (
                f"after {after}: partition {partition}: the counters applied up to offset {mark}, "
                f"but offset {first} is not settled: {self.why(partition, first)}"
            )
            committed = self.cluster.committed.get(partition, 0)
            assert committed <= first, (
                f"after {after}: partition {partition}: offset {committed} is committed, but "
                f"offset {first} is not settled: {self.why(partition, first)}"
            )

    # -- the end --
    def heal_and_drain(self) -> None:
        """Faults end; the live replicas (one at least) consume everything; then all stop."""
        self.vote_log.failures = self.counters.failures = self.dead_letters.failures = 0
        self.vote_log.may_forget = False
        while self.cluster.on_the_wire:
            self.cluster.deliver(0)
        self._expire_all_but_live()
        if not self.replicas:
            self.start_replica()
        for _ in range(DRAIN_ROUNDS):
            if self.drained():
                break
            for replica in list(self.replicas):
                self.poll(replica)
            self.now += 1.0  # a stuck consumer is replaced within GROUP_STUCK_S
            self._expire_all_but_live()
        else:
            raise AssertionError(f"the replicas did not consume everything: {self.progress()}")
        for _ in range(len(self.replicas)):
            self._stop(0)
        while self.cluster.on_the_wire:
            self.cluster.deliver(0)
        self.check(after="the end")

    def _expire_all_but_live(self) -> None:
        live = {id(r.loop.supervisor.consumer) for r in self.replicas}
        for member in [m for m in self.cluster.members if id(m) not in live]:
            self.cluster.expire(member)

    def drained(self) -> bool:
        if self.stores.pending or any(r.loop._storing for r in self.replicas):
            return False
        for partition, log in enumerate(self.cluster.logs):
            owner = self.cluster.owner.get(partition)
            if owner is None or owner.to_assign or owner.to_revoke:
                return False
            if owner.positions.get(partition) != len(log):
                return False
        return True

    def progress(self) -> str:
        return "; ".join(
            f"p{p}: {len(log)} records, owner at {o.positions.get(p) if o else None}"
            for p, log in enumerate(self.cluster.logs)
            for o in [self.cluster.owner.get(p)]
        )

    def check_exactly_once(self) -> None:
        accepted = set(self.accepted)
        counted = self.counters.counted_ids
        twice = {v for v, n in counted.items() if n > 1}
        assert not twice, f"votes counted twice: {sorted(twice)}{self.forgot(twice)}"
        missing = accepted - set(counted)
        assert not missing, f"accepted votes not counted: {sorted(missing)}{self.forgot(missing)}"
        assert set(counted) == accepted and self.counters.total == len(accepted)
        unstored = accepted - set(self.vote_log.held)
        assert not unstored, f"votes not stored: {sorted(unstored)}{self.forgot(unstored)}"
        assert set(self.vote_log.held) == accepted, "the vote log holds votes never accepted"
        again = {v for v, n in self.vote_log.inserts.items() if n > 1}
        assert not again, f"votes stored twice: {sorted(again)}{self.forgot(again)}"
        assert self.poison - set(self.dead_letters.sent) == set(), "poison records not in the DLQ"

    def forgot(self, vote_ids: set[str]) -> str:
        forgotten = sorted(vote_ids & set(self.vote_log.forgotten))
        if not forgotten:
            return ""
        return (
            f"; the vote log forgot acknowledged writes of {forgotten} (the pool's MongoDB "
            "client does not ask for journaled writes, j=True)"
        )

    def count_what_ran(self) -> None:
        tally = self.tally
        tally["examples"] += 1
        tally["records"] += sum(len(log) for log in self.cluster.logs)
        tally["duplicate stores"] += self.vote_log.duplicates
        tally["two stores in flight"] += self.stores.most_at_once >= 2
        tally["redelivered votes not stored again"] += sum(
            s.already_applied for s in self.all_stats
        )
        tally["consumers replaced"] += sum(s.consumers_replaced for s in self.all_stats)
        tally["commits refused"] += self.cluster.refused_commits
        tally["client retries counted once"] += sum(
            1
            for v, n in Counter(
                r.key_bytes for log in self.cluster.logs for r in log if r.key_bytes
            ).items()
            if n > 1
        )

    def _partition_of(self, vote_id: str) -> int:
        return int(vote_id[1:]) % PARTITIONS


def run_nemesis(
    loop_class: type[ConsumeLoop] = ConsumeLoop,
    *,
    vote_log_may_forget: bool = False,
    shrink: bool = True,
) -> Counter[str]:
    """Run EXAMPLES schedules against the loop; returns how often each path ran."""
    tally: Counter[str] = Counter()
    kinds = STEPS + (("forget",) * 3 if vote_log_may_forget else ())
    phases = (Phase.explicit, Phase.generate) + ((Phase.shrink,) if shrink else ())

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not FULL,
        database=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        print_blob=FULL,
    )
    @given(
        seed=st.integers(0, 2**32 - 1),
        batch_max=st.integers(1, 3),
        steps=st.lists(
            st.tuples(st.sampled_from(kinds), st.integers(0, 999)),
            min_size=STEPS_MIN,
            max_size=STEPS_MAX,
        ),
    )
    def schedule(seed: int, batch_max: int, steps: list[tuple[str, int]]) -> None:
        world = World(seed, batch_max, loop_class, vote_log_may_forget, tally)
        try:
            for number, (kind, arg) in enumerate(steps):
                world.step(kind, arg)
                world.check(after=f"step {number} ({kind} {arg})")
            world.heal_and_drain()
            world.check_exactly_once()
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\nschedule: seed={seed}, batch_max={batch_max}, steps={steps}"
            ) from exc
        world.count_what_ran()

    schedule()
    return tally


def test_the_consume_loop_counts_and_stores_every_vote_once_whatever_the_nemesis_does() -> None:
    tally = run_nemesis()
    assert tally["examples"] == EXAMPLES
    # The paths the nemesis is for did run (over all schedules, not each one).
    for path in (
        "two stores in flight",
        "a revoke finished batches in hand",
        "redelivered votes not stored again",
        "consumers replaced",
        "commits refused",
        "client retries counted once",
    ):
        assert tally[path] > 0, f"never ran: {path}; {dict(tally)}"


def test_a_vote_log_that_forgets_an_acknowledged_write_is_caught_unless_writes_are_journaled() -> (
    None
):
    # The fake vote log forgets its last acknowledged write only when the pool's MongoDB client
    # does not ask for journaled writes: a crash of an unjournaled mongod loses it, and a vote
    # counted (or skipped as at or below the applied mark) is then never stored.
    # Not shrunk: the first forgetting caught is report enough, and shrinking takes long.
    tally = run_nemesis(vote_log_may_forget=not vote_log_journaled(), shrink=False)
    assert tally["examples"] == EXAMPLES


class CommitsPositionsWithABatchInHand(ConsumeLoop):
    """Broken on purpose: commits where the consumer stands while batches are still in hand."""

    def _poll_once(self) -> None:
        super()._poll_once()
        if self._storing:
            commit_positions(self.supervisor.consumer)


class CountsTheNewestBatchFirst(ConsumeLoop):
    """Broken on purpose: with two batches in hand, counts the newer one first."""

    def _oldest_to_count(self, new_batch: Prepared | None) -> InFlightStore | None:
        chosen = super()._oldest_to_count(new_batch)
        if chosen is not None and self._storing:
            self._storing.appendleft(chosen)
            return self._storing.pop()
        return chosen


@pytest.mark.parametrize("broken", [CommitsPositionsWithABatchInHand, CountsTheNewestBatchFirst])
def test_the_nemesis_catches_a_broken_loop(broken: type[ConsumeLoop]) -> None:
    with pytest.raises(AssertionError, match="is not settled|counted|stored"):
        run_nemesis(broken, shrink=False)
