"""The read side of an ingress replica: its store clients, and what reads them.

The GET routes (serve_app/read/routes.py) and the GetResults RPC (serve_app/ingress/deployment.py)
get the replica's `ReadSide` (its clients, made once) and read with the functions here. Asyncio
clients throughout: reads never block the replica's event loop.

The live page (`GET /`, static/index.html) listens to `GET /events`, a Server-Sent Events stream:
one `snapshot` event about once a second with the results, the latest votes and the votes per
second of the last minute. One `LiveFeed` per replica reads that snapshot once per tick (one Redis
pipeline) however many pages listen, and hands the same bytes to every stream.
A stream ends itself after LIVE_STREAM_S, below the HTTP proxy's request_timeout_s (30 s in
config.yaml), and tells the browser to reconnect (`retry:`), which EventSource does on its own.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from serve_app.domain.counting import Results
from serve_app.domain.votes import format_timestamp
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.settings import Settings
from serve_app.stores.clients import new_async_mongo, new_async_redis
from serve_app.stores.redis_counts import (
    PER_SECOND,
    RECENT,
    RECENT_KEEP,
    read_results_pipeline,
    recent_from_reply,
    results_from_replies,
)

log = logging.getLogger(__name__)

RECENT_LIMIT_MAX = 100
RECENT_LIMIT_DEFAULT = 20

LIVE_TICK_S = 1.0  # one snapshot per tick per replica
LIVE_STREAM_S = 25.0  # a stream's lifetime: below config.yaml's request_timeout_s (30 s)
LIVE_RETRY_MS = 500  # EventSource waits this long before it reconnects
LIVE_KEEPALIVE_S = 10.0  # a comment line when no snapshot came (a stuck store)
LIVE_MAX_STREAMS = 100  # per replica; each open stream holds one of max_ongoing_requests
LIVE_RECENT = 20  # latest votes per snapshot
LIVE_RATE_S = 60  # seconds of votes:per_second per snapshot


class KafkaHealth(Protocol):
    """What the health check needs of the ingress producer: None when healthy, else why not."""

    def health(self) -> str | None: ...


@dataclass(frozen=True)
class ReadSide:
    """One replica's read-side clients (store timeout: `store_timeout_s`) and its live feed."""

    redis: Redis
    mongo: AsyncMongoClient[dict[str, Any]]
    kafka: KafkaHealth
    live: LiveFeed


def connect_read_side(settings: Settings, kafka: KafkaHealth) -> ReadSide:
    """The clients connect on first use; the live feed reads only while a page listens."""
    redis = new_async_redis(settings.redis_url, settings.store_timeout_s)
    return ReadSide(
        redis,
        new_async_mongo(settings.mongo_url, settings.store_timeout_s),
        kafka,
        LiveFeed(functools.partial(live_snapshot, redis)),
    )


async def read_results(redis: Redis) -> Results | None:
    """The counters in one round trip, or None when Redis does not answer."""
    try:
        replies = await read_results_pipeline(redis).execute()
    except (RedisError, OSError):
        return None
    return results_from_replies(replies, datetime.now(UTC))


def results_to_proto(results: Results) -> pb.Results:
    """The GetResults reply: the same fields, as GET /results sends them."""
    return pb.Results(**results.model_dump(mode="json"))


async def read_recent(redis: Redis, limit: int) -> list[dict[str, Any]]:
    """The latest counted votes, newest first. Raises RedisError/OSError."""
    entries = await redis.lrange(RECENT, 0, RECENT_KEEP - 1)
    return recent_from_reply(entries, limit)


async def read_health(read: ReadSide) -> dict[str, str]:
    """ "ok" or why not, for Kafka, Redis and MongoDB."""
    kafka, redis_state, mongo = await asyncio.gather(
        asyncio.to_thread(read.kafka.health), _redis_health(read.redis), _mongo_health(read.mongo)
    )
    return {"kafka": kafka or "ok", "redis": redis_state or "ok", "mongo": mongo or "ok"}


async def _redis_health(redis: Redis) -> str | None:
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        return f"unreachable: {type(exc).__name__}: {exc}"
    return None


async def _mongo_health(mongo: AsyncMongoClient[dict[str, Any]]) -> str | None:
    try:
        await mongo.admin.command("ping")
    except PyMongoError as exc:
        return f"unreachable: {type(exc).__name__}"
    return None


async def live_snapshot(redis: Redis) -> dict[str, Any]:
    """What the live page shows, in one Redis round trip.

    A store that does not answer leaves its part null and names itself in `unavailable`:
    the page keeps what it has and says so, instead of going blank.
    """
    now = time.time()
    second = int(now)
    first = second - LIVE_RATE_S + 1
    pipe = read_results_pipeline(redis)
    pipe.hmget(PER_SECOND, [str(s) for s in range(first, second + 1)])
    pipe.lrange(RECENT, 0, RECENT_KEEP - 1)
    try:
        replies: Any = await pipe.execute()
    except (RedisError, OSError) as exc:
        replies = exc
    snapshot: dict[str, Any] = {
        "results": None,
        "per_second": None,
        "recent": None,
        "unavailable": [],
        "server_time": format_timestamp(datetime.fromtimestamp(now, UTC)),
    }
    if isinstance(replies, BaseException):
        snapshot["unavailable"].append("redis")
    else:
        results = results_from_replies(replies[:5], datetime.now(UTC))
        snapshot["results"] = results.model_dump(mode="json")
        snapshot["per_second"] = {
            "start": first,
            "counts": [int(count or 0) for count in replies[5]],
        }
        snapshot["recent"] = recent_from_reply(replies[6], LIVE_RECENT)
    return snapshot


def sse_event(event: str, data: Any) -> bytes:
    """One Server-Sent Event. json.dumps escapes newlines, so the data is one line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class LiveFeed:
    """One ticker per replica for every open /events stream.

    While at least one stream is open, a task reads a snapshot every `tick_s` and encodes it once;
    each stream waits for the next one and writes the same bytes. With no listener the task ends,
    so an idle replica does no reads.
    """

    def __init__(self, read: Callable[[], Awaitable[Any]], tick_s: float = LIVE_TICK_S) -> None:
        self._read = read
        self._tick_s = tick_s
        self._listeners = 0
        self._task: asyncio.Task[None] | None = None
        self._latest: bytes | None = None
        self._latest_at = 0.0
        self._seq = 0
        self._changed: asyncio.Event | None = None

    @property
    def listeners(self) -> int:
        return self._listeners

    async def stream(
        self,
        lifetime_s: float = LIVE_STREAM_S,
        retry_ms: int = LIVE_RETRY_MS,
        keepalive_s: float = LIVE_KEEPALIVE_S,
    ) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        self._listeners += 1
        try:
            if self._changed is None:
                self._changed = asyncio.Event()
            if self._task is None:
                self._task = asyncio.create_task(self._run())
            yield f"retry: {retry_ms}\n\n".encode()
            seen = 0
            if self._latest is not None and loop.time() - self._latest_at < 2 * self._tick_s:
                seen = self._seq
                yield self._latest
            deadline = loop.time() + lifetime_s
            while (remaining := deadline - loop.time()) > 0:
                if self._seq != seen and self._latest is not None:
                    seen = self._seq
                    yield self._latest
                    continue
                try:
                    await asyncio.wait_for(self._changed.wait(), min(remaining, keepalive_s))
                except TimeoutError:
                    if deadline - loop.time() > 0:
                        yield b": keep-alive\n\n"
        finally:
            self._listeners -= 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._listeners > 0:
                started = loop.time()
                try:
                    snapshot = await self._read()
                except Exception:  # a failed tick must not end every stream
                    log.exception("live snapshot failed")
                else:
                    self._latest = sse_event("snapshot", snapshot)
                    self._latest_at = loop.time()
                    self._seq += 1
                    assert self._changed is not None
                    changed, self._changed = self._changed, asyncio.Event()
                    changed.set()
                await asyncio.sleep(max(0.0, self._tick_s - (loop.time() - started)))
        finally:
            self._task = None
