"""The VotePersister replica around its consume loop (no Ray: the class itself, a fake loop)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from serve_app.pool import deployment
from serve_app.pool.stats import PersisterStats
from serve_app.settings import Settings


class FakeLoop:
    def __init__(self) -> None:
        self.stats = PersisterStats()
        self.stopped = threading.Event()

    def run(self) -> None:
        self.stopped.wait(10)

    def stop(self) -> None:
        self.stopped.set()


@pytest.fixture
def replica(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    loop = FakeLoop()
    monkeypatch.setattr(deployment, "build_consume_loop", lambda settings: loop)
    gc.unfreeze()
    try:
        persister = deployment.VotePersister.func_or_class(Settings())
        yield persister
        loop.stop()
        persister._thread.join(5)
    finally:
        gc.unfreeze()


def test_the_replica_freezes_its_start_up_objects_out_of_the_collectors_reach(replica: Any) -> None:
    # docs/decisions/0014-pool-per-vote-cost.md: collections no longer walk the start-up heap.
    assert gc.get_freeze_count() > 0
    assert replica._thread.is_alive()
    replica.check_health()


def test_a_stalled_consume_loop_fails_the_health_check_so_serve_replaces_the_replica(
    replica: Any,
) -> None:
    replica.check_health()
    replica._loop.stats.stalled = "failing for 301s, last: vote log: ConnectionError: refused"
    with pytest.raises(RuntimeError, match="stalled: failing for 301s, last: vote log"):
        replica.check_health()
    replica._loop.stats.stalled = None  # the step succeeded again
    replica.check_health()
