"""The one place Redis and MongoDB clients are made, for the pool (blocking clients, in its
threads) and the read side (asyncio clients, on the ingress replica's event loop).

Every timeout of a client is the one given: connecting, choosing a server, and each call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
import redis.asyncio as aioredis
from pymongo import AsyncMongoClient, MongoClient


def new_redis(url: str, timeout_s: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


def new_async_redis(url: str, timeout_s: float) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


def new_mongo(
    url: str, timeout_s: float, write_concern: Mapping[str, Any] | None = None
) -> MongoClient[dict[str, Any]]:
    """`write_concern` as in MONGO_WRITE_CONCERNS ({"w": ..., "j": ...}); None: the server's."""
    return MongoClient(url, **_mongo_options(timeout_s, write_concern))


def new_async_mongo(url: str, timeout_s: float) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(url, **_mongo_options(timeout_s, None))


def _mongo_options(timeout_s: float, write_concern: Mapping[str, Any] | None) -> dict[str, Any]:
    timeout_ms = int(timeout_s * 1000)
    options: dict[str, Any] = {
        "serverSelectionTimeoutMS": timeout_ms,
        "connectTimeoutMS": timeout_ms,
        "socketTimeoutMS": timeout_ms,
    }
    if write_concern is not None:
        options["w"] = write_concern["w"]
        if write_concern.get("j"):
            options["journal"] = True
    return options
