"""Which delivered records count: the pure rules behind exactly-once counting."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from serve_app.domain.counting import Delivered, counter_updates
from serve_app.domain.votes import Vote, accept
from tests.support.counting_model import CountingModel

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
    model = CountingModel()
    assert model.apply("votes", updates) == 2
    before = copy.deepcopy(model)
    assert model.apply("votes", updates) == 0
    assert model == before
    assert model.total == 2
    assert model.applied_offsets == {"votes:0": 2}


def test_an_overlapping_redelivery_counts_only_the_new_records() -> None:
    model = CountingModel()
    first = [delivered(f"v{i}", 0, i) for i in range(5)]
    model.apply("votes", counter_updates(first, {f"v{i}": (0, i) for i in range(5)}))
    second = [delivered(f"v{i}", 0, i) for i in range(3, 8)]
    assert model.apply("votes", counter_updates(second, {f"v{i}": (0, i) for i in range(8)})) == 3
    assert model.total == 8


def test_offsets_are_applied_per_topic_and_partition() -> None:
    """Partition 0 of one topic says nothing about partition 0 of another (the script's key)."""
    model = CountingModel()
    model.apply("votes", counter_updates([delivered("a", 0, 9)], {"a": (0, 9)}))
    other = counter_updates([delivered("b", 0, 3)], {"b": (0, 3)})
    assert model.apply("votes-other", other) == 1
    assert model.applied_offsets == {"votes:0": 9, "votes-other:0": 3}
