"""TCP_NODELAY on the sockets of the replicas' own HTTP servers (direct ingress, Ray Serve 2.60).

asyncio turns Nagle's algorithm off only for sockets whose `proto` is IPPROTO_TCP. Serve creates
its listening socket as `socket.socket(AF_INET, SOCK_STREAM)` (proto 0), so every connection it
accepts keeps Nagle on: uvicorn writes a response's head and body separately, and the body waits
for the client's delayed ACK, ~40 ms per request. docs/decisions/0018-tcp-nodelay.md.
"""

from __future__ import annotations

import asyncio.base_events
import socket
from typing import Any

_original_set_nodelay = asyncio.base_events._set_nodelay  # type: ignore[attr-defined]  # private: not in typeshed


def _set_nodelay_on_any_tcp_socket(sock: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return
    _original_set_nodelay(sock)


def enable() -> None:
    """Make asyncio set TCP_NODELAY on every TCP stream socket it wraps (idempotent)."""
    asyncio.base_events._set_nodelay = _set_nodelay_on_any_tcp_socket  # type: ignore[attr-defined]  # private: not in typeshed
