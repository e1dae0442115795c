"""Poll a condition until it holds; fail, naming what was awaited, when it does not in time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class WaitFailed(AssertionError):
    """What was awaited did not happen. An AssertionError, so that pytest shows a failed test."""


def wait_until(
    condition: Callable[[], Any],
    timeout_s: float,
    what: str,
    every_s: float = 0.2,
    *,
    retry_on: tuple[type[Exception], ...] = (),
    alive: Callable[[], bool] | None = None,
) -> Any:
    """Call condition every every_s until it returns something truthy, and return that.

    retry_on: exceptions of condition that mean "not yet" (a server still starting refuses
    connections). alive: stop waiting as soon as it returns False (the awaited process exited).
    """
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise WaitFailed(f"gave up waiting for {what}: the process exited")
        try:
            last = condition()
        except retry_on:
            pass  # not yet
        else:
            if last:
                return last
        time.sleep(every_s)
    raise WaitFailed(f"timed out after {timeout_s:.0f}s waiting for {what} (last: {last!r})")
