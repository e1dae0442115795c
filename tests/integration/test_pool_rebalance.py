"""A cooperative rebalance on the real broker: the old owner commits the revoked partitions'
offsets inside the revoke, bounded, and the new owner starts after everything it counted."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from devkit.waiting import wait_until
from serve_app.pool import consume_loop
from serve_app.pool.clients import build_consume_loop, consumer_config
from serve_app.settings import Settings
from tests.integration.test_pipeline_parts import (  # noqa: F401 - `settings` is a fixture
    counters,
    produce_votes,
    run_in_thread,
    settings,
)

pytestmark = pytest.mark.integration


def test_a_revoked_partition_is_committed_inside_the_revoke_and_the_next_owner_starts_after_it(
    settings: Settings,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only the revoke's commit may land: the commits after each batch and of the positions are
    # switched off, so the newcomer's committed offsets can come from nowhere else.
    in_revoke = threading.Event()
    revoke_commits: list[dict[tuple[str, int], int]] = []
    commit_async = consume_loop.commit_async

    def only_in_revoke(consumer: Any, offsets: dict[tuple[str, int], int]) -> None:
        if in_revoke.is_set():
            revoke_commits.append(dict(offsets))
            commit_async(consumer, offsets)

    monkeypatch.setattr(consume_loop, "commit_async", only_in_revoke)
    monkeypatch.setattr(consume_loop, "commit_positions", lambda _consumer: None)
    produce_votes(settings.kafka_topic, "rb-", 90)
    loop = build_consume_loop(settings)
    revoked = loop.supervisor.before_revoke

    def marked_revoke(consumer: Any, partitions: list[TopicPartition]) -> None:
        in_revoke.set()
        try:
            revoked(consumer, partitions)
        finally:
            in_revoke.clear()

    loop.supervisor.before_revoke = marked_revoke
    thread = run_in_thread(loop)
    newcomer = Consumer(consumer_config(settings) | {"client.id": "votes-test-newcomer"})
    assigned: list[int] = []
    try:
        wait_until(lambda: loop.stats.counted == 90, 60, f"90 votes counted ({loop.stats})")
        newcomer.subscribe(
            [settings.kafka_topic],
            on_assign=lambda _c, ps: assigned.extend(p.partition for p in ps),
        )

        def newcomer_owns_a_partition() -> bool:
            newcomer.poll(0.2)
            return bool(assigned)

        wait_until(newcomer_owns_a_partition, 60, "the newcomer assigned a partition")
        assert revoke_commits and {p for (_topic, p) in revoke_commits[0]} == set(assigned)
        # The newcomer starts where the old owner's counts ended: nothing is redelivered.
        committed = newcomer.committed(
            [TopicPartition(settings.kafka_topic, p) for p in assigned], timeout=10
        )
        for tp in committed:
            _low, high = newcomer.get_watermark_offsets(tp, timeout=10)
            assert tp.offset == high == revoke_commits[0][(settings.kafka_topic, tp.partition)]
        assert newcomer.consume(100, 2.0) == []
    finally:
        newcomer.close()
        loop.stop()
        thread.join(15)
    assert counters()["total"] == "90"
