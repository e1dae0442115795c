"""Which delivered records count: the pure rules behind exactly-once counting."""

from __future__ import annotations

from datetime import UTC, datetime

from serve_app.domain.counting import Delivered, apply_in_memory, counter_updates
from serve_app.domain.votes import Vote, accept

NOW = datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)


def delivered(vote_id: str, partition: int, offset: int, band: str = "Alux Nahual") -> Delivered:
    vote = Vote(name=band, album="Alux", year=1983, rank=1, vote_id=vote_id)
    return Delivered(accept(vote, "http", NOW), "votes", partition, offset)


def test_only_the_stored_copy_of_a_vote_counts() -> None:
    batch = [delivered("a", 0, 10), delivered("a", 0, 11), delivered("b", 1, 3)]
    updates = counter_updates(batch, {"a": (0, 10), "b": (1, 3)})
    assert [u.counts for u in updates] == [True, False, True]
    assert updates[0].second == int(NOW.timestamp())


def test_a_vote_stored_by_an_earlier_batch_does_not_count_again() -> None:
    updates = counter_updates([delivered("a", 0, 42)], {"a": (0, 7)})
    assert [u.counts for u in updates] == [False]


def test_a_replayed_batch_changes_nothing() -> None:
    batch = [delivered("a", 0, 1), delivered("b", 0, 2, band="Viernes Verde")]
    updates = counter_updates(batch, {"a": (0, 1), "b": (0, 2)})
    state: dict[str, object] = {}
    assert apply_in_memory(state, updates) == 2
    before = {k: dict(v) for k, v in state.items()}  # type: ignore[call-overload]
    assert apply_in_memory(state, updates) == 0
    assert state == before
    assert state["counts"]["total"] == 2  # type: ignore[index]
    assert state["offsets"] == {0: 2}


def test_an_overlapping_redelivery_counts_only_the_new_records() -> None:
    state: dict[str, object] = {}
    first = [delivered(f"v{i}", 0, i) for i in range(5)]
    apply_in_memory(state, counter_updates(first, {f"v{i}": (0, i) for i in range(5)}))
    second = [delivered(f"v{i}", 0, i) for i in range(3, 8)]
    assert apply_in_memory(state, counter_updates(second, {f"v{i}": (0, i) for i in range(8)})) == 3
    assert state["counts"]["total"] == 8  # type: ignore[index]
