"""serve_app/stores/clients.py makes the pool's and the read side's clients with the timeouts
they are given; the pool's vote log client also carries the write concern."""

from __future__ import annotations

import asyncio

from serve_app.pool.clients import new_mongo as pool_mongo
from serve_app.pool.clients import new_redis as pool_redis
from serve_app.settings import load_settings
from serve_app.stores.clients import new_async_mongo, new_async_redis, new_mongo, new_redis

URL_REDIS = "redis://127.0.0.1:1/0"
URL_MONGO = "mongodb://127.0.0.1:1/"


def test_redis_clients_use_the_given_timeout() -> None:
    for client in (new_redis(URL_REDIS, 1.5), new_async_redis(URL_REDIS, 1.5)):
        options = client.connection_pool.connection_kwargs
        assert options["socket_timeout"] == options["socket_connect_timeout"] == 1.5


def test_mongo_clients_use_the_given_timeout_and_write_concern() -> None:
    client = new_mongo(URL_MONGO, 2.5, {"w": "majority", "j": True})
    assert client.options.server_selection_timeout == 2.5
    assert client.options.pool_options.connect_timeout == 2.5
    assert client.options.pool_options.socket_timeout == 2.5
    assert client.write_concern.document == {"w": "majority", "j": True}
    assert new_mongo(URL_MONGO, 2.5, {"w": 1}).write_concern.document == {"w": 1}
    client.close()

    async def read_side_client() -> None:
        client = new_async_mongo(URL_MONGO, 0.5)
        assert client.options.server_selection_timeout == 0.5
        assert client.options.pool_options.socket_timeout == 0.5
        assert client.write_concern.document == {}
        await client.close()

    asyncio.run(read_side_client())


def test_the_pool_uses_its_timeout_and_the_write_concern_setting() -> None:
    settings = load_settings({"persist_timeout_s": 7, "mongo_write_concern": "journaled"}, {})
    assert pool_redis(settings).connection_pool.connection_kwargs["socket_timeout"] == 7
    client = pool_mongo(settings)
    assert client.options.server_selection_timeout == 7
    assert client.write_concern.document == {"w": 1, "j": True}
    client.close()
