"""The read side: results and the latest votes from Redis, health of every part.

Used by the ingress deployment's GET routes and its GetResults RPC. Asyncio clients throughout:
reads never block the replica's event loop.

The live page (`GET /`, static/index.html) listens to `GET /events`, a Server-Sent Events stream:
one `snapshot` event about once a second with the results, the latest votes and the votes per
second of the last minute. One `LiveFeed` per replica reads that snapshot once per tick (one Redis
pipeline) however many pages listen, and hands the same bytes to every stream.
A stream ends itself after LIVE_STREAM_S, below the HTTP proxy's request_timeout_s (30 s in
config.yaml), and tells the browser to reconnect (`retry:`), which EventSource does on its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol

from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pymongo.errors import PyMongoError
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


class ReadSide:
    def __init__(self, settings: Settings, producer: KafkaHealth) -> None:
        self._producer = producer
        self._redis = new_async_redis(settings.redis_url, settings.store_timeout_s)
        self._mongo = new_async_mongo(settings.mongo_url, settings.store_timeout_s)
        self._page = resources.files("serve_app.read").joinpath("static/index.html").read_text()
        self.live = LiveFeed(self.live_snapshot)

    async def results(self) -> Results | None:
        """The counters in one round trip, or None when Redis does not answer."""
        try:
            replies = await read_results_pipeline(self._redis).execute()  # type: ignore[attr-defined]
        except (RedisError, OSError):
            return None
        return results_from_replies(replies, datetime.now(UTC))

    async def results_response(self) -> JSONResponse:
        results = await self.results()
        if results is None:
            return JSONResponse(status_code=503, content={"detail": "the counter store is unavailable"})
        return JSONResponse(results_to_json(results))

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        """The latest counted votes, newest first. Raises RedisError/OSError."""
        entries = await self._redis.lrange(RECENT, 0, RECENT_KEEP - 1)
        return recent_from_reply(entries, limit)

    async def recent_response(self, limit: int) -> JSONResponse:
        """`limit` is validated by the route."""
        try:
            votes = await self.recent(limit)
        except (RedisError, OSError) as exc:
            return JSONResponse(status_code=503, content={
                "detail": f"the counter store is unavailable: {type(exc).__name__}"})
        return JSONResponse({"votes": votes})

    async def live_snapshot(self) -> dict[str, Any]:
        """What the live page shows, in one Redis round trip.

        A store that does not answer leaves its part null and names itself in `unavailable`:
        the page keeps what it has and says so, instead of going blank.
        """
        now = time.time()
        second = int(now)
        first = second - LIVE_RATE_S + 1
        pipe: Any = read_results_pipeline(self._redis)
        pipe.hmget(PER_SECOND, [str(s) for s in range(first, second + 1)])
        pipe.lrange(RECENT, 0, RECENT_KEEP - 1)
        try:
            replies: Any = await pipe.execute()
        except (RedisError, OSError) as exc:
            replies = exc
        snapshot: dict[str, Any] = {
            "results": None, "per_second": None, "recent": None, "unavailable": [],
            "server_time": format_timestamp(datetime.fromtimestamp(now, UTC)),
        }
        if isinstance(replies, BaseException):
            snapshot["unavailable"].append("redis")
        else:
            snapshot["results"] = results_to_json(results_from_replies(replies[:5], datetime.now(UTC)))
            snapshot["per_second"] = {
                "start": first, "counts": [int(count or 0) for count in replies[5]],
            }
            snapshot["recent"] = recent_from_reply(replies[6], LIVE_RECENT)
        return snapshot

    def events_response(self) -> Response:
        """The live stream, or 503 when this replica already serves LIVE_MAX_STREAMS of them
        (the page then polls /results and /votes/recent instead)."""
        if self.live.listeners >= LIVE_MAX_STREAMS:
            return JSONResponse(status_code=503, content={"detail": "too many live streams"},
                                headers={"Retry-After": "30"})
        return StreamingResponse(
            self.live.stream(),
            media_type="text/event-stream",
            headers={
                "Cache-Control": "no-cache, no-transform",
                "X-Accel-Buffering": "no",  # nginx (the Kubernetes ingress) must not buffer it
            },
        )

    async def health(self) -> dict[str, str]:
        kafka, redis_state, mongo = await asyncio.gather(
            asyncio.to_thread(self._producer.health), self._redis_health(), self._mongo_health()
        )
        return {"kafka": kafka or "ok", "redis": redis_state or "ok", "mongo": mongo or "ok"}

    async def health_response(self) -> JSONResponse:
        health = await self.health()
        healthy = all(state == "ok" for state in health.values())
        return JSONResponse(status_code=200 if healthy else 503, content=health)

    def page_response(self) -> HTMLResponse:
        return HTMLResponse(self._page)

    async def _redis_health(self) -> str | None:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            return f"unreachable: {type(exc).__name__}: {exc}"
        return None

    async def _mongo_health(self) -> str | None:
        try:
            await self._mongo.admin.command("ping")
        except PyMongoError as exc:
            return f"unreachable: {type(exc).__name__}"
        return None


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
        self, lifetime_s: float = LIVE_STREAM_S, retry_ms: int = LIVE_RETRY_MS,
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


def results_to_json(results: Results) -> dict[str, Any]:
    return {
        "total": results.total,
        "by_band": results.by_band,
        "by_album": results.by_album,
        "by_year": results.by_year,
        "by_rank": results.by_rank,
        "as_of": format_timestamp(results.as_of),
    }


def results_to_proto(results: Results) -> pb.Results:
    return pb.Results(
        total=results.total,
        by_band=results.by_band,
        by_album=results.by_album,
        by_year=results.by_year,
        by_rank=results.by_rank,
        as_of=format_timestamp(results.as_of),
    )
