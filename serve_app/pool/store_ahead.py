"""A batch in the vote log's hands while the consume loop polls the next one.

The loop starts each store through a `StoreStarter` (in production `StoreAhead`, a thread per
batch); the nemesis test (tests/chaos/test_pool_nemesis.py) passes one that lets it decide when,
and in which order, the stores end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from serve_app.pool.processor import BatchProcessor, Prepared, Stored


class InFlightStore(Protocol):
    """One batch being stored: the loop counts it once `result()` has its stored positions."""

    prepared: Prepared

    def done(self) -> bool:
        """True once the store has ended (`result()` would not wait)."""
        ...

    def result(self) -> Stored | None:
        """Wait for the store; what the vote log holds for the batch, None if stopped first."""
        ...


StoreStarter = Callable[[BatchProcessor, Prepared], InFlightStore]


class StoreAhead:
    """One batch going into the vote log on a thread of its own, while the loop polls the next.

    The thread runs `BatchProcessor.store` (with its retries, which end when the loop is
    stopped); `result()` waits for it on the loop's thread and raises what it raised.
    """

    def __init__(self, processor: BatchProcessor, prepared: Prepared) -> None:
        self.prepared = prepared
        self._stored: Stored | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._store, args=(processor,), name="vote-log-store", daemon=True
        )
        self._thread.start()

    def _store(self, processor: BatchProcessor) -> None:
        try:
            self._stored = processor.store(self.prepared)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop's thread by result()
            self._error = exc

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self) -> Stored | None:
        """What the vote log holds for the batch's votes; None when stopped before it stored."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._stored
