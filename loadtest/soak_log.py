"""The soak's progress lines: one prefix and a time, flushed at once (a run is watched live)."""

from __future__ import annotations

import time


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)
