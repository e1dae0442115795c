"""The read side: results from Redis, recent votes from the MongoDB log, health of every part.

Used by the ingress deployment's GET routes and its GetResults RPC. Asyncio clients throughout:
reads never block the replica's event loop.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from fastapi.responses import HTMLResponse, JSONResponse
from pymongo import AsyncMongoClient, DESCENDING
from redis.exceptions import RedisError
from pymongo.errors import PyMongoError

from serve_app.counting import Results
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.settings import Settings
from serve_app.sinks.mongo_log import COLLECTION
from serve_app.sinks.redis_counts import read_results_pipeline, results_from_replies
from serve_app.votes import format_timestamp

if TYPE_CHECKING:
    from serve_app.producer import VoteProducer

RECENT_LIMIT_MAX = 100
RECENT_LIMIT_DEFAULT = 20


class ReadSide:
    def __init__(self, settings: Settings, producer: VoteProducer) -> None:
        timeout = settings.store_timeout_s
        self._producer = producer
        self._redis = aioredis.Redis.from_url(
            settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongo_url,
            serverSelectionTimeoutMS=int(timeout * 1000),
            connectTimeoutMS=int(timeout * 1000),
            socketTimeoutMS=int(timeout * 1000),
        )
        self._votes = self._mongo[settings.mongo_database][COLLECTION]
        self._page = resources.files("serve_app").joinpath("static/index.html").read_text()

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

    async def recent_response(self, limit: int) -> JSONResponse:
        """Newest first via the received_at index; `limit` is validated by the route."""
        try:
            cursor = self._votes.find({}, {"kafka": 0, "persisted_at": 0}).sort(
                "received_at", DESCENDING
            ).limit(limit)
            documents = await cursor.to_list(length=limit)
        except PyMongoError as exc:
            return JSONResponse(status_code=503, content={"detail": f"the vote log is unavailable: {type(exc).__name__}"})
        return JSONResponse({"votes": [recent_vote_json(doc) for doc in documents]})

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


def recent_vote_json(document: dict[str, Any]) -> dict[str, Any]:
    received_at: datetime = document["received_at"]
    if received_at.tzinfo is None:  # BSON dates come back naive, in UTC
        received_at = received_at.replace(tzinfo=UTC)
    return {
        "vote_id": document["_id"],
        "name": document["name"],
        "album": document["album"],
        "year": document["year"],
        "rank": document["rank"],
        "received_at": format_timestamp(received_at),
    }
