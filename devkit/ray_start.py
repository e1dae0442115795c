"""ray.init() for a test session that survives Ray's fixed startup deadline on a busy machine.

Ray 2.60 gives a new node's raylet 30 s to register with the GCS and has no setting for it
(`raylet_start_wait_time_s` in ray/_private/node.py). On 2 cores shared with builds, the
session's first ray.init() has missed it ("The current node timed out during startup") and
failed every test of the session. That one error is retried on a fresh local instance; any
other error is raised at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

STARTUP_TIMEOUT = "timed out during startup"
ATTEMPTS = 3

log = logging.getLogger(__name__)


def init_local_ray(
    attempts: int = ATTEMPTS,
    init: Callable[..., Any] | None = None,
    shutdown: Callable[[], None] | None = None,
    **kwargs: Any,
) -> Any:
    """ray.init(**kwargs), again after ray.shutdown() while the raylet misses its deadline."""
    if init is None or shutdown is None:
        import ray

        init, shutdown = init or ray.init, shutdown or ray.shutdown
    for attempt in range(1, attempts + 1):
        try:
            return init(**kwargs)
        except Exception as exc:
            if STARTUP_TIMEOUT not in str(exc) or attempt == attempts:
                raise
            log.warning("ray.init: %s (attempt %d of %d); retrying", exc, attempt, attempts)
            shutdown()
    raise AssertionError("unreachable: the last attempt returns or raises")
