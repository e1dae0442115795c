"""The benchmark's places and constants: the repository, the results, the stack's addresses.

Nothing here touches a developer's data: every run gets its own Kafka topics, consumer groups,
MongoDB databases and Redis keys (devkit/names.py), and deletes them at the end. What the
tests and scripts use too (names, ports, waiting, topics, counting records) is in devkit/.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
TMP = RESULTS / "tmp"
PY = sys.executable
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
MONGO_URL = "mongodb://127.0.0.1:27017/"
# Ports the benchmark may use for its own servers (peers, direct-ingress replicas, HAProxy stats).
PORT_RANGE = range(38000, 39000)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    log(f"{what}: {time.monotonic() - started:.1f}s")
