"""serve_app.tcp_nodelay: connections accepted on a proto-0 listening socket (as Ray Serve 2.60
creates them for direct ingress) get TCP_NODELAY."""

from __future__ import annotations

import asyncio
import asyncio.base_events
import socket
from collections.abc import Iterator

import pytest

from serve_app import tcp_nodelay


@pytest.fixture
def restore_asyncio() -> Iterator[None]:
    original = asyncio.base_events._set_nodelay  # type: ignore[attr-defined]  # private: not in typeshed
    yield
    asyncio.base_events._set_nodelay = original  # type: ignore[attr-defined]  # private: not in typeshed


async def _nodelay_of_accepted_connection() -> int:
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0, as Serve does
    listening.bind(("127.0.0.1", 0))
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def on_connection(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connection, sock=listening)
    try:
        _reader, writer = await asyncio.open_connection(*listening.getsockname())
        value = await asyncio.wait_for(accepted, 5)
        writer.close()
        return value
    finally:
        server.close()
        await server.wait_closed()


def test_without_it_asyncio_leaves_nagle_on_for_a_proto_0_listener(restore_asyncio: None) -> None:
    # The premise: if Python starts setting it itself, this fails and the module can go.
    asyncio.base_events._set_nodelay = tcp_nodelay._original_set_nodelay  # type: ignore[attr-defined]  # private: not in typeshed
    assert asyncio.run(_nodelay_of_accepted_connection()) == 0


def test_enabled_the_accepted_connection_has_tcp_nodelay(restore_asyncio: None) -> None:
    tcp_nodelay.enable()
    tcp_nodelay.enable()  # idempotent
    assert asyncio.run(_nodelay_of_accepted_connection()) != 0
