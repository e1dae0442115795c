"""The pool's batch processor and consume loop with plain fakes: no Kafka, Redis, MongoDB or Ray."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from confluent_kafka import TopicPartition

from serve_app.domain.counting import CounterUpdate, Delivered
from serve_app.domain.votes import Vote, accept, encode_record
from serve_app.pool import consume_loop
from serve_app.pool.consume_loop import ConsumeLoop
from serve_app.pool.ports import Poison
from serve_app.pool.processor import BACKOFF_FIRST_S, BatchProcessor
from serve_app.pool.stats import PersisterStats
from tests.support.counting_model import CountingModel

TOPIC = "votes"


@dataclass(frozen=True)
class FakeRecord:
    """A consumed record, as the processor reads it."""

    value_bytes: bytes | None
    partition_no: int
    offset_no: int
    key_bytes: bytes | None = None

    def value(self) -> bytes | None:
        return self.value_bytes

    def key(self) -> bytes | None:
        return self.key_bytes

    def headers(self) -> list[tuple[str, bytes]] | None:
        return None

    def error(self) -> None:  # a consumed message without error, as the consume loop sees it
        return None

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self.partition_no

    def offset(self) -> int:
        return self.offset_no


def vote_record(vote_id: str, partition: int, offset: int, band: str = "Alux Nahual") -> FakeRecord:
    vote = Vote(name=band, album="Alux Nahual", year=1983, rank=1, vote_id=vote_id)
    return FakeRecord(
        encode_record(accept(vote, "http")).value, partition, offset, vote_id.encode()
    )


@dataclass
class FakeVoteLog:
    """Keeps the first record of each vote_id; fails its next `failures` calls."""

    held: dict[str, tuple[int, int]] = field(default_factory=dict)
    failures: int = 0
    calls: int = 0

    def store(self, batch: Sequence[Delivered]) -> Mapping[str, tuple[int, int]]:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("vote log unreachable")
        for item in batch:
            self.held.setdefault(item.record.vote_id, item.position)
        return {item.record.vote_id: self.held[item.record.vote_id] for item in batch}


@dataclass
class FakeDeadLetters:
    sent: list[Poison] = field(default_factory=list)

    def send(self, poison: Sequence[Poison]) -> int:
        self.sent.extend(poison)
        return len(poison)


@dataclass
class Pool:
    vote_log: FakeVoteLog = field(default_factory=FakeVoteLog)
    counters: CountingModel = field(default_factory=CountingModel)
    dead_letters: FakeDeadLetters = field(default_factory=FakeDeadLetters)
    waits: list[float] = field(default_factory=list)
    stop_after_waits: int | None = None  # the loop is stopped during this many-th wait

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return self.stop_after_waits is not None and len(self.waits) >= self.stop_after_waits

    def processor(self) -> BatchProcessor:
        return BatchProcessor(
            TOPIC,
            self.vote_log,
            self.counters,
            self.dead_letters,
            retryable=(ConnectionError,),
            wait=self.wait,
            stats=PersisterStats(),
        )


def test_a_clean_batch_is_stored_counted_and_its_next_offsets_returned() -> None:
    pool = Pool()
    processor = pool.processor()
    batch = [vote_record("a", 0, 10), vote_record("b", 0, 11), vote_record("c", 2, 5)]
    assert processor.process(batch) == {(TOPIC, 0): 12, (TOPIC, 2): 6}
    assert pool.counters.total == 3 and set(pool.vote_log.held) == {"a", "b", "c"}
    assert (processor.stats.batches, processor.stats.persisted, processor.stats.counted) == (
        1,
        3,
        3,
    )
    assert pool.dead_letters.sent == [] and pool.waits == []


def test_poison_records_are_dead_lettered_with_the_reason_and_committed_past() -> None:
    pool = Pool()
    processor = pool.processor()
    batch = [
        vote_record("a", 1, 0),
        FakeRecord(b"not json at all", 1, 1),
        FakeRecord(b'{"vote_id": "x"}', 1, 2),
        FakeRecord(None, 1, 3),
        vote_record("b", 1, 4),
    ]
    assert processor.process(batch) == {(TOPIC, 1): 5}
    assert [p.record.offset() for p in pool.dead_letters.sent] == [1, 2, 3]
    assert pool.dead_letters.sent[0].reason.startswith("not JSON")
    assert pool.dead_letters.sent[2].reason == "empty record (no value)"
    assert pool.counters.total == 2 and set(pool.vote_log.held) == {"a", "b"}
    assert (processor.stats.dead_lettered, processor.stats.persisted) == (3, 2)


def test_a_clients_duplicate_at_a_new_offset_is_stored_once_and_not_counted() -> None:
    pool = Pool()
    processor = pool.processor()
    assert processor.process([vote_record("same", 0, 5)]) == {(TOPIC, 0): 6}
    # The client's retry: the same vote_id, a new record at a later offset (here another batch).
    assert processor.process([vote_record("same", 0, 9), vote_record("other", 0, 10)]) == {
        (TOPIC, 0): 11
    }
    assert pool.vote_log.held["same"] == (0, 5)
    assert pool.counters.total == 2 and processor.stats.counted == 2
    assert (
        processor.stats.persisted == 3
    )  # the duplicate was stored ("already stored"), not counted


def test_a_redelivered_batch_changes_nothing_and_is_committed_again() -> None:
    pool = Pool()
    processor = pool.processor()
    batch = [vote_record(f"v{i}", i % 2, 100 + i) for i in range(6)]
    first = processor.process(batch)
    counts_after_first = (pool.counters.total, dict(pool.counters.by_band))
    assert processor.process(batch) == first  # after a crash before the commit, or a rebalance
    assert processor.process(batch[2:4]) == {(TOPIC, 0): 103, (TOPIC, 1): 104}
    assert (pool.counters.total, dict(pool.counters.by_band)) == counts_after_first
    assert processor.stats.counted == 6 and processor.stats.batches == 3


def test_a_store_that_fails_is_retried_with_backoff_until_it_succeeds() -> None:
    pool = Pool(vote_log=FakeVoteLog(failures=3))
    processor = pool.processor()
    batch = [vote_record("a", 0, 0), FakeRecord(b"{", 0, 1)]
    assert processor.process(batch) == {(TOPIC, 0): 2}
    assert pool.waits == [BACKOFF_FIRST_S, BACKOFF_FIRST_S * 2, BACKOFF_FIRST_S * 4]
    assert pool.vote_log.calls == 4 and pool.counters.total == 1
    assert len(pool.dead_letters.sent) == 1  # the dead-letter step is not repeated with the store
    assert processor.stats.store_failures == 3
    assert processor.stats.last_error == "vote log: ConnectionError: vote log unreachable"


def test_stopped_while_a_store_is_down_nothing_is_counted_or_committed() -> None:
    pool = Pool(vote_log=FakeVoteLog(failures=10), stop_after_waits=2)
    processor = pool.processor()
    assert processor.process([vote_record("a", 0, 0)]) is None
    assert pool.counters.total == 0 and processor.stats.batches == 0


def test_a_failure_that_is_not_a_store_outage_is_not_retried() -> None:
    class BrokenCounters(CountingModel):
        def apply(self, topic: str, updates: Iterable[CounterUpdate]) -> int:
            raise TypeError("a bug")

    pool = Pool(counters=BrokenCounters())
    with pytest.raises(TypeError):
        pool.processor().process([vote_record("a", 0, 0)])
    assert pool.waits == []


# ---- the consume loop stores one batch while it polls and prepares the next ---------------------


@dataclass
class ScriptedConsumer:
    """Hands out the given batches, one per consume(); records its calls and commits."""

    batches: list[list[FakeRecord]]
    events: list[str]
    timeouts: list[float] = field(default_factory=list)

    def consume(self, _count: int, timeout: float) -> list[FakeRecord]:
        self.timeouts.append(timeout)
        self.events.append("poll")
        return self.batches.pop(0) if self.batches else []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.events.append("commit " + ",".join(f"{tp.partition}:{tp.offset}" for tp in offsets))

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, 0)]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        self.events.append("positions")
        return [TopicPartition(TOPIC, 0, 99)]

    def get_watermark_offsets(self, _tp: TopicPartition, cached: bool) -> tuple[int, int]:
        return 0, 100


@dataclass
class RecordingVoteLog(FakeVoteLog):
    """A vote log whose store of the first batch waits until the loop has polled twice."""

    events: list[str] = field(default_factory=list)
    polled_again: threading.Event = field(default_factory=threading.Event)

    def store(self, batch: Sequence[Delivered]) -> Mapping[str, tuple[int, int]]:
        first = batch[0].offset
        self.events.append(f"store {first} begins")
        if first == 0:
            assert self.polled_again.wait(5), "the loop did not poll while the vote log stored"
        self.events.append(f"store {first} ends")
        return super().store(batch)


@dataclass
class RecordingCounters(CountingModel):
    events: list[str] = field(default_factory=list)

    def apply(self, topic: str, updates: Iterable[CounterUpdate]) -> int:
        updates = list(updates)
        self.events.append(f"count {updates[0].offset}")
        return super().apply(topic, updates)


def loop_over(
    consumer: ScriptedConsumer,
    pool: Pool,
    stores_in_flight: int,
    batch_max_records: int = consume_loop.BATCH_MAX_RECORDS,
    clock: Callable[[], float] = time.monotonic,
) -> ConsumeLoop:
    supervisor = SimpleNamespace(consumer=consumer, replace_if_stuck=lambda _now: None)
    return ConsumeLoop(
        supervisor,
        pool.processor(),
        dead_letters=None,  # type: ignore[arg-type]  # this loop dead-letters nothing
        stop=threading.Event(),
        stores_in_flight=stores_in_flight,
        batch_max_records=batch_max_records,
        clock=clock,
    )


def scripted_loop(
    batches: list[list[FakeRecord]],
    stop_after_waits: int | None = None,
    vote_log_failures: int = 0,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[ConsumeLoop, ScriptedConsumer, list[str]]:
    """A loop over `batches` with one store in flight (the order of events is then
    deterministic)."""
    events: list[str] = []
    consumer = ScriptedConsumer(batches, events)
    vote_log = RecordingVoteLog(events=events, failures=vote_log_failures)
    pool = Pool(
        vote_log=vote_log,
        counters=RecordingCounters(events=events),
        stop_after_waits=stop_after_waits,
    )
    original = consumer.consume

    def consume(count: int, timeout: float) -> list[FakeRecord]:
        batch = original(count, timeout)
        if len(consumer.timeouts) >= 2:
            vote_log.polled_again.set()
        return batch

    consumer.consume = consume  # type: ignore[method-assign,assignment]  # wrapped to see the next poll
    return loop_over(consumer, pool, stores_in_flight=1, clock=clock), consumer, events


def test_the_next_batch_is_polled_while_the_vote_log_stores_and_each_commit_follows_its_count() -> (
    None
):
    first = [vote_record("a", 0, 0), vote_record("b", 0, 1)]
    second = [vote_record("c", 0, 2), FakeRecord(b"poison", 0, 3)]
    loop, consumer, events = scripted_loop([first, second])
    loop._poll_once()  # polls the first batch, hands it to the vote log
    loop._poll_once()  # polls the second while the first is stored, then counts the first
    loop._poll_once()  # nothing new: counts the second
    # The loop's own steps, in order (the store thread's lines interleave with them) ...
    assert [e for e in events if e.startswith(("poll", "count", "commit"))] == [
        "poll",
        "poll",
        "count 0",
        "commit 0:2",
        "poll",
        "count 2",
        "commit 0:4",
    ]
    # ... and where the stores fall: the first one ends after the second poll, each store ends
    # before its count, and the second begins once the first has ended (it may overlap count 0).
    at = events.index
    assert at("poll", at("poll") + 1) < at("store 0 ends") < at("count 0")
    assert at("store 0 ends") < at("store 2 begins") < at("store 2 ends") < at("count 2")
    assert loop.stats.counted == 3 and loop.stats.dead_lettered == 1
    # Polls are brief while a batch is being stored: its count waits for the poll.
    assert consumer.timeouts == [
        consume_loop.BATCH_MAX_WAIT_S,
        consume_loop.BATCH_WAIT_WHILE_STORING_S,
        consume_loop.BATCH_WAIT_WHILE_STORING_S,
    ]


def test_positions_are_committed_only_with_no_batch_in_hand() -> None:
    # The consumer's position is past a batch that is polled but not yet counted: committing it
    # then would lose that batch's counts in a crash (decision 0002's positions commit).
    clock = [1000.0]
    loop, _consumer, events = scripted_loop(
        [[vote_record("a", 0, 0)], [vote_record("b", 0, 1)]], clock=lambda: clock[0]
    )
    loop._positions_committed_at = clock[0] - consume_loop.POSITIONS_COMMIT_S
    loop._poll_once()
    loop._poll_once()
    assert not any(e.startswith("commit 0:99") for e in events)
    loop._poll_once()  # the last batch counted, nothing in hand
    assert events[-1] == "commit 0:99"


def test_stopped_while_the_vote_log_is_down_nothing_is_counted_or_committed() -> None:
    loop, _consumer, events = scripted_loop(
        [[vote_record("a", 0, 1)]], stop_after_waits=2, vote_log_failures=10
    )
    loop._poll_once()
    loop._poll_once()
    assert not any(e.startswith(("count", "commit")) for e in events)
    assert loop.stats.batches == 0


# ---- two stores in flight: they may end in any order, the counts keep the batches' order -------


@dataclass
class GatedVoteLog(FakeVoteLog):
    """A vote log whose store of each batch (named by its first offset) waits for its gate."""

    events: list[str] = field(default_factory=list)
    gates: dict[int, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def gate(self, first_offset: int) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(first_offset, threading.Event())

    def store(self, batch: Sequence[Delivered]) -> Mapping[str, tuple[int, int]]:
        first = batch[0].offset
        self.events.append(f"store {first} begins")
        assert self.gate(first).wait(5), f"store {first} was never let through"
        with self.lock:
            held = super().store(batch)
        self.events.append(f"store {first} ends")
        return held


def gated_loop(
    batches: list[list[FakeRecord]],
    stores_in_flight: int,
    batch_max_records: int = 1,
) -> tuple[ConsumeLoop, GatedVoteLog, RecordingCounters, list[str]]:
    """A second store runs only beside full batches: by default a batch of one is full."""
    events: list[str] = []
    vote_log = GatedVoteLog(events=events)
    counters = RecordingCounters(events=events)
    loop = loop_over(
        ScriptedConsumer(batches, events),
        Pool(vote_log=vote_log, counters=counters),
        stores_in_flight,
        batch_max_records,
    )
    return loop, vote_log, counters, events


def wait_for(event: str, events: list[str]) -> None:
    for _ in range(500):
        if event in events:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"never happened: {event}; events: {events}")


def test_two_stores_run_at_once_and_the_counts_keep_the_batch_order() -> None:
    a, b, c = ([vote_record(f"v{i}", 0, i)] for i in (0, 1, 2))
    loop, vote_log, _counters, events = gated_loop([a, b, c], stores_in_flight=2)
    loop._poll_once()  # batch 0 to the vote log
    loop._poll_once()  # batch 1 too: store 0 has not ended and there is room for a second
    wait_for("store 1 begins", events)
    assert "store 0 ends" not in events and not any(e.startswith("count") for e in events)
    # Store 1 ends first; the loop still counts batch 0 first, once its store has ended.
    vote_log.gate(1).set()
    wait_for("store 1 ends", events)
    vote_log.gate(0).set()
    vote_log.gate(2).set()
    loop._poll_once()  # batch 2 polled; two stores in flight, so batch 0 is counted now
    loop._poll_once()  # nothing new: batch 1
    loop._poll_once()  # and batch 2
    assert [e for e in events if e.startswith(("count", "commit"))] == [
        "count 0",
        "commit 0:1",
        "count 1",
        "commit 0:2",
        "count 2",
        "commit 0:3",
    ]
    assert loop.stats.counted == 3


def test_a_third_batch_waits_for_the_oldest_of_two_stores() -> None:
    a, b, c = ([vote_record(f"v{i}", 0, i)] for i in (0, 1, 2))
    loop, vote_log, _counters, events = gated_loop([a, b, c], stores_in_flight=2)
    loop._poll_once()
    loop._poll_once()
    threading.Timer(0.2, vote_log.gate(0).set).start()
    loop._poll_once()  # blocks on store 0, then hands batch 2 over while store 1 still runs
    assert events.index("store 0 ends") < events.index("store 2 begins") < events.index("count 0")
    assert "store 1 ends" not in events
    vote_log.gate(1).set()
    vote_log.gate(2).set()
    loop._poll_once()
    loop._poll_once()
    assert loop.stats.counted == 3


def test_a_clients_duplicate_in_two_stores_at_once_counts_once_whichever_store_wins() -> None:
    # The same vote_id at offsets 0 and 1, in two batches stored at once; the later one ends first
    # and so is the copy the vote log holds. Only that copy counts.
    loop, vote_log, counters, events = gated_loop(
        [[vote_record("same", 0, 0)], [vote_record("same", 0, 1)]], stores_in_flight=2
    )
    loop._poll_once()
    loop._poll_once()
    vote_log.gate(1).set()
    wait_for("store 1 ends", events)
    vote_log.gate(0).set()
    loop._poll_once()
    loop._poll_once()
    assert vote_log.held == {"same": (0, 1)}
    assert loop.stats.counted == 1
    assert counters.total == 1 and counters.by_band == {"Alux Nahual": 1}


def test_a_batch_that_is_not_full_waits_for_the_store_before_it() -> None:
    # Live traffic, no backlog: the loop waits for the store in flight, so the next batch grows
    # while it waits instead of going to the vote log as many small inserts.
    loop, vote_log, _counters, events = gated_loop(
        [[vote_record("a", 0, 0)], [vote_record("b", 0, 1)]],
        stores_in_flight=2,
        batch_max_records=consume_loop.BATCH_MAX_RECORDS,
    )
    loop._poll_once()
    threading.Timer(0.2, vote_log.gate(0).set).start()
    loop._poll_once()  # batch 1 is not full: it waits for store 0 and is stored after it
    assert events.index("store 0 ends") < events.index("store 1 begins") < events.index("count 0")
    vote_log.gate(1).set()
    loop._poll_once()
    assert loop.stats.counted == 2


def test_one_store_in_flight_at_least() -> None:
    with pytest.raises(ValueError, match="stores_in_flight must be at least 1, got 0"):
        gated_loop([], stores_in_flight=0)
