"""The stack's stores as the benchmark uses them: bounded drops, counters it waits for."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import redis

from bench.harness.env import MONGO_URL, REDIS_HOST, REDIS_PORT, log
from devkit.net import port_open


def drop_mongo_database(name: str, timeout_s: float = 180.0) -> bool:
    """Drop a database of ours, bounded: FerretDB (SQLite) can take minutes on a large one, and
    a stuck drop must not hang the benchmark. True when it was dropped in time."""
    import threading

    from pymongo import MongoClient

    done = threading.Event()

    def drop() -> None:
        with contextlib.suppress(Exception):
            client: Any = MongoClient(
                MONGO_URL, serverSelectionTimeoutMS=5000, socketTimeoutMS=int(timeout_s * 1000)
            )
            client.drop_database(name)
            client.close()
            done.set()

    thread = threading.Thread(target=drop, name=f"drop-{name}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not done.is_set():
        log(f"could not drop MongoDB database {name} within {timeout_s:.0f}s: drop it by hand")
    return done.is_set()


def wait_for_count(
    read: Callable[[], int], target: int, timeout_s: float, stall_s: float = 60.0
) -> int:
    """Poll `read` until it reaches `target`; give up after timeout_s, or after stall_s without
    any progress (a stuck pool: waiting longer would only waste the run). Returns the last value."""
    deadline = time.monotonic() + timeout_s
    last, changed_at = None, time.monotonic()
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = read()
            if value >= target:
                return value
            if value != last:
                last, changed_at = value, time.monotonic()
        if time.monotonic() - changed_at > stall_s:
            log(f"no progress for {stall_s:.0f}s ({last}/{target}): giving up waiting")
            break
        time.sleep(0.1)
    return last if last is not None else -1


def check_stack() -> None:
    """The local stack answers (Kafka, Redis, MongoDB), or a clear error that says what to do."""
    for name, port in (("Kafka", 9092), ("Redis", 6379), ("MongoDB/FerretDB", 27017)):
        if not port_open("127.0.0.1", port):
            raise SystemExit(f"{name} is not answering on 127.0.0.1:{port}: run `make stack-up`")


def clear_votes_keys(client: redis.Redis) -> None:
    """Every `votes:*` key the app keeps (counters, replay guard, and whatever it adds later)."""
    keys = list(client.scan_iter(match="votes:*", count=500))
    if keys:
        client.delete(*keys)


def refuse_foreign_keys(db: int, option: str) -> None:
    """Refuse a Redis database that holds anything but the app's own `votes:*` keys: the run
    deletes those, and must not run beside someone else's data. `option` picks another."""
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    try:
        foreign = [
            key
            for key in client.scan_iter(count=200)
            if not key.decode(errors="replace").startswith("votes:")
        ]
    finally:
        client.close()
    if foreign:
        raise SystemExit(
            f"Redis database {db} holds other data ({foreign[:3]}...): pick another with {option}"
        )


def clear_votes_db(db: int) -> None:
    """clear_votes_keys on Redis database `db`."""
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    try:
        clear_votes_keys(client)
    finally:
        client.close()
