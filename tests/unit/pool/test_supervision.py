"""GroupWatch: when the persister gives up on a Kafka consumer whose group membership is stuck."""

from __future__ import annotations

import json

from serve_app.pool.clients import consumer_config
from serve_app.pool.supervision import GROUP_STUCK_S, GroupWatch
from serve_app.settings import Settings


def stats(state: str, join_state: str) -> str:
    # The fields of librdkafka's statistics JSON that matter here, plus some that do not.
    return json.dumps(
        {
            "name": "votes-persister#consumer-1",
            "type": "consumer",
            "cgrp": {
                "state": state,
                "stateage": 1200,
                "join_state": join_state,
                "rebalance_cnt": 3,
                "assignment_size": 2,
            },
        }
    )


def test_a_steady_member_is_never_stuck_even_without_partitions() -> None:
    watch = GroupWatch(now=0.0, stuck_after_s=60)
    for t in range(0, 600, 5):
        watch.update(stats("up", "steady"), now=float(t))
        assert watch.stuck_for(float(t)) is None


def test_a_member_that_never_becomes_steady_again_is_stuck_after_the_limit() -> None:
    watch = GroupWatch(now=0.0, stuck_after_s=60)
    watch.update(stats("up", "steady"), now=10.0)
    for t in range(15, 70, 5):  # session lost: the coordinator is never reached again
        watch.update(stats("up", "wait-join"), now=float(t))
        assert watch.stuck_for(float(t)) is None
    watch.update(stats("query-coord", "init"), now=75.0)
    assert watch.stuck_for(75.0) == 65.0
    assert watch.state == "query-coord/init"


def test_a_rebalance_that_completes_resets_the_clock() -> None:
    watch = GroupWatch(now=0.0, stuck_after_s=60)
    watch.update(stats("up", "wait-assign-call"), now=50.0)
    watch.update(stats("up", "steady"), now=55.0)
    assert watch.stuck_for(110.0) is None and watch.stuck_for(116.0) == 61.0


def test_no_statistics_at_all_count_as_stuck_and_bad_json_is_ignored() -> None:
    watch = GroupWatch(now=0.0)
    watch.update("not json", now=1.0)
    watch.update("[]", now=2.0)
    assert watch.stuck_for(GROUP_STUCK_S - 1) is None
    assert watch.stuck_for(GROUP_STUCK_S + 1) == GROUP_STUCK_S + 1


def test_the_consumer_reports_statistics_often_enough_for_the_watch() -> None:
    interval_s = consumer_config(Settings())["statistics.interval.ms"] / 1000
    assert interval_s * 4 <= GROUP_STUCK_S
