"""Ports on this machine: find a free one, see whether something listens on one."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence

ANY_PORT = 0  # bind to it and the OS picks a free port


def free_port(candidates: Sequence[int] = (ANY_PORT,)) -> int:
    """The first of `candidates` nothing holds on 127.0.0.1 (ANY_PORT: one the OS picks)."""
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    where = f"{candidates[0]}-{candidates[-1]}" if isinstance(candidates, range) else candidates
    raise RuntimeError(f"no free port in {where}")


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout_s):
        return True
    return False
