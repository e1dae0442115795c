"""The consumer pool: each replica of `VotePersister` is a Ray actor running one consume loop.

The loop (`serve_app.pool.consume_loop`) runs on a thread of its own because poll blocks; its
parts are the batch processor (`processor`), the consumer's supervisor (`supervision`), the
dead-letter sink (`dead_letters`), and the clients they are built with (`clients`).
"""

from __future__ import annotations

import gc
import threading
from typing import Any

from ray import serve

from serve_app.pool.clients import build_consume_loop
from serve_app.settings import Settings


@serve.deployment(name="VotePersister")
class VotePersister:
    """A Serve replica that runs a ConsumeLoop on a background thread.

    Serve starts, health-checks and restarts the replicas; a dead consume thread, or a step of
    the batch processor failing for too long, fails the health check, so Serve replaces the
    replica. Requests are not part of the work: the pool pulls from Kafka. `stats()` answers
    what this replica has done.
    """

    def __init__(self, settings: Settings) -> None:
        self._loop = build_consume_loop(settings)
        # Start-up objects out of the collector's reach: ~8% of the loop's CPU was garbage
        # collection walking them (docs/decisions/0014-pool-per-vote-cost.md).
        gc.freeze()
        self._thread = threading.Thread(target=self._loop.run, name="vote-persister", daemon=True)
        self._thread.start()

    def check_health(self) -> None:
        if not self._thread.is_alive():
            raise RuntimeError("the consume loop has stopped")
        stalled = self._loop.stats.stalled  # a step failing for long: serve_app.pool.stall
        if stalled is not None:
            raise RuntimeError(f"the consume loop is stalled: {stalled}")

    def stats(self) -> dict[str, Any]:
        stats = self._loop.stats
        return vars(stats) | {"running": self._thread.is_alive(), "total_lag": stats.total_lag}

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Custom autoscaling metrics for `serve_app.pool.lag_policy` (Serve calls this
        periodically)."""
        stats = self._loop.stats
        return {"lag": float(stats.total_lag), "partitions": float(len(stats.assigned))}

    def __del__(self) -> None:
        # Graceful shutdown: finish or abandon the batch in flight, leave the group.
        loop = getattr(self, "_loop", None)
        if loop is not None:
            loop.stop()
            self._thread.join(timeout=10)
