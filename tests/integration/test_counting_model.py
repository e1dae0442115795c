"""The in-memory counting model agrees with the real counter script in Redis.

Unit tests reason about counting with tests/support/counting_model.py; this checks that the
model still does what serve_app/stores/redis_counts.py's Lua script does, batch by batch:
the votes counted, the counters, and the applied offsets ("topic:partition" -> offset).
Runs against the local stack's Redis, in an empty database of its own: the session's database
(VOTES_TEST_REDIS_DB) holds the e2e tests' counts, which the model knows nothing of.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from serve_app.domain.counting import Delivered, counter_updates
from serve_app.domain.votes import Vote, accept
from serve_app.stores import redis_counts
from serve_app.stores.redis_counts import RedisCounts
from tests.conftest import TEST_REDIS_DB
from tests.support.counting_model import CountingModel

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)
TOPIC, OTHER_TOPIC = "votes-model", "votes-model-other"


def delivered(
    vote_id: str,
    topic: str,
    partition: int,
    offset: int,
    band: str = "Alux Nahual",
    album: str = "Alux",
    year: int = 1983,
) -> Delivered:
    vote = Vote(name=band, album=album, year=year, rank=1 + offset % 3, vote_id=vote_id)
    return Delivered(accept(vote, "http", NOW), topic, partition, offset)


def redis_state(client: redis.Redis) -> tuple[dict[str, object], dict[str, int]]:
    """The counters (as the read side reads them, with the rate series and the recent votes) and
    the applied offsets in Redis."""
    results = redis_counts.results_from_replies(
        redis_counts.read_results_pipeline(client).execute(), NOW
    )
    counters = {
        "total": results.total,
        "by_band": results.by_band,
        "by_album": results.by_album,
        "by_year": results.by_year,
        "by_rank": results.by_rank,
        "per_second": {
            second.decode(): int(votes)
            for second, votes in client.hgetall(redis_counts.PER_SECOND).items()
        },
        "recent": [json.loads(entry) for entry in client.lrange(redis_counts.RECENT, 0, -1)],
    }
    offsets = {
        field.decode(): int(offset)
        for field, offset in client.hgetall(redis_counts.APPLIED_OFFSETS).items()
    }
    return counters, offsets


def model_state(model: CountingModel) -> tuple[dict[str, object], dict[str, int]]:
    counters = {
        "total": model.total,
        "by_band": dict(model.by_band),
        "by_album": dict(model.by_album),
        "by_year": dict(model.by_year),
        "by_rank": dict(model.by_rank),
        "per_second": dict(model.per_second),
        "recent": model.recent,
    }
    return counters, dict(model.applied_offsets)


@pytest.fixture
def empty_redis(stack: Any) -> Iterator[redis.Redis]:
    """The database after the session's: emptied before and after this test."""
    client = redis.Redis(port=6379, db=TEST_REDIS_DB + 1)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_the_model_and_the_lua_script_count_the_same(empty_redis: redis.Redis) -> None:
    redis_client = empty_redis
    counts = RedisCounts(redis_client)
    model = CountingModel()
    first = [
        delivered("a", TOPIC, 0, 0),
        delivered("b", TOPIC, 0, 1, band="Viernes Verde"),
        delivered("c", TOPIC, 1, 0, band="Bohemia Suburbana", album="Sueños", year=1990),
        # A client's duplicate of "a" (a retry, same vote_id): the log holds (0, 0).
        delivered("a", TOPIC, 1, 1),
    ]
    stored = {"a": (0, 0), "b": (0, 1), "c": (1, 0)}
    second = [
        delivered("b", TOPIC, 0, 1, band="Viernes Verde"),  # already applied
        delivered("d", TOPIC, 0, 2),
        delivered("e", TOPIC, 1, 2, band="Easy Easy"),
    ]
    stored |= {"d": (0, 2), "e": (1, 2)}
    # Another topic with the same partition numbers and lower offsets: new records all.
    other = [
        delivered("f", OTHER_TOPIC, 0, 0, band="Ricardo Arjona"),
        delivered("g", OTHER_TOPIC, 1, 0, band="Ricardo Arjona"),
    ]
    stored_other = {"f": (0, 0), "g": (1, 0)}
    batches = [
        (TOPIC, counter_updates(first, stored), 3),
        (TOPIC, counter_updates(first, stored), 0),  # the same batch redelivered
        (TOPIC, counter_updates(second, stored), 2),  # an overlapping redelivery
        (OTHER_TOPIC, counter_updates(other, stored_other), 2),
        (OTHER_TOPIC, counter_updates(other, stored_other), 0),
    ]
    for topic, updates, expected in batches:
        assert counts.apply(topic, updates, now=NOW) == expected
        assert model.apply(topic, updates) == expected
        assert redis_state(redis_client) == model_state(model)

    assert model.applied_offsets == {
        f"{TOPIC}:0": 2,
        f"{TOPIC}:1": 2,
        f"{OTHER_TOPIC}:0": 0,
        f"{OTHER_TOPIC}:1": 0,
    }
    assert model.total == 7


def test_large_batches_with_replays_and_duplicates_keep_the_latest_votes_as_the_model_does(
    empty_redis: redis.Redis,
) -> None:
    """More counted votes than the recent list keeps, over partitions, replays and retries: the
    script tallies counters per field and pushes only the latest votes, with the same end state."""
    counts = RedisCounts(empty_redis)
    model = CountingModel()
    bands = ["Alux Nahual", "Viernes Verde", "Bohemia Suburbana", 'Ñandú / "Comillas"']
    stored: dict[str, tuple[int, int]] = {}

    def batch(first: int, size: int) -> list[Delivered]:
        """Records at offsets first.. of 3 partitions, interleaved like a consumed batch."""
        items = [
            delivered(
                f"v{p}-{first + i}",
                TOPIC,
                p,
                first + i,
                band=bands[i % 4],
                album=f"album {i % 7}",
                year=1980 + i % 5,
            )
            for i in range(size)
            for p in range(3)
        ]
        for item in items:
            stored.setdefault(item.record.vote_id, item.position)
        return items

    first = batch(0, 150)
    # A client's retries of earlier votes land at new offsets (they must not count) ...
    retries = [delivered(f"v0-{i}", TOPIC, 2, 1000 + i) for i in range(40)]
    # ... and a redelivery overlaps applied records with new ones (partition 2 is past them all).
    overlap = batch(100, 120)
    for items in (first, retries, first, overlap):
        updates = counter_updates(items, stored)
        expected = model.apply(TOPIC, updates)
        assert counts.apply(TOPIC, updates, now=NOW) == expected
        assert redis_state(empty_redis) == model_state(model)
    assert len(model.recent) == redis_counts.RECENT_KEEP and model.total > 500


def test_the_applied_marks_are_read_as_the_model_reads_them(empty_redis: redis.Redis) -> None:
    """The consume loop skips redelivered votes at or below these marks before the vote log."""
    counts = RedisCounts(empty_redis)
    model = CountingModel()
    assert counts.applied_marks(TOPIC, [0, 1]) == model.applied_marks(TOPIC, [0, 1]) == {}
    items = [
        delivered("a", TOPIC, 0, 4),
        delivered("b", TOPIC, 0, 9),
        delivered("c", TOPIC, 2, 0),
        delivered("d", OTHER_TOPIC, 1, 7),
    ]
    stored = {item.record.vote_id: item.position for item in items}
    for topic in (TOPIC, OTHER_TOPIC):
        updates = counter_updates([i for i in items if i.topic == topic], stored)
        counts.apply(topic, updates, now=NOW)
        model.apply(topic, updates)
    for topic, partitions in ((TOPIC, [0, 1, 2]), (OTHER_TOPIC, [0, 1]), (TOPIC, [])):
        assert counts.applied_marks(topic, partitions) == model.applied_marks(topic, partitions)
    assert counts.applied_marks(TOPIC, [0, 1, 2]) == {0: 9, 2: 0}
    assert counts.applied_marks(OTHER_TOPIC, [1]) == {1: 7}
