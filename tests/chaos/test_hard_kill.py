"""Hard kills of the stores: each one SIGKILLed mid-stream (a crash, an OOM kill), then restarted.

A store stopped with SIGTERM flushes what it acknowledged; a killed one keeps only what it had
made durable before it answered. The careful client streams votes with vote_ids of its own, retries
what failed or timed out with the same vote_ids and, once the store is back, sends again requests
it had sent before the kill (as after a timeout that hid a 202): those votes were stored, counted
and committed before the kill, so a vote log that lost them would count them twice. Afterwards:
accepted = counted in Redis = stored in the vote log, exactly.

What each store must keep (docs/decisions/0022-vote-log-write-concern.md):
  ferretdb  the vote log: inserts acknowledged only once committed to SQLite (WAL, synchronous
            FULL); on MongoDB the pool's write concern is journaled (j: true)
  redis     appendfsync always: an applied batch and its replay guard are on disk
  kafka     acks=all: a record is in the broker's log (the page cache, which a process kill leaves
            alone) before the ingress answers 202; the consumer group's offsets likewise

`make test` kills each of redis and ferretdb once; `make chaos` (VOTES_CHAOS_FULL=1) kills each
of the three several times, Kafka included (its restart after an unclean stop recovers its log).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.chaos.harness import FULL, assert_exact, run_scenario
from tests.conftest import Pipeline

pytestmark = pytest.mark.chaos

VOTES = 6000 if FULL else 2000
KILLS = 3 if FULL else 1
# Between a kill and the restart: the pool's retries and the ingress's 503s meet a dead store.
DOWN_S = 5.0 if FULL else 2.0
# Between two kills, so that each meets a pool busy again.
BETWEEN_KILLS_S = 6.0
PARTS = ["redis", "ferretdb", "kafka"] if FULL else ["redis", "ferretdb"]


@pytest.mark.parametrize("part", PARTS)
def test_a_store_killed_mid_stream_loses_nothing_it_acknowledged(
    part: str, pipeline: Pipeline, mongo_db: Any, stack: Any
) -> None:
    def fault() -> None:
        for kill in range(KILLS):
            if kill:
                time.sleep(BETWEEN_KILLS_S)
            stack.kill(part)
            try:
                time.sleep(DOWN_S)
            finally:
                stack.start(part)

    report = run_scenario(
        f"{part}-sigkill",
        pipeline,
        mongo_db,
        fault,
        votes=VOTES,
        deadline_s=180 + KILLS * DOWN_S,
        settle_s=120,
        resend_after_fault=20,
    )
    assert report.retries >= 20, report  # the requests sent again did go out
    assert_exact(report)
