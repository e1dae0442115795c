"""Why the ingress replicas run on Python's asyncio loop, not uvloop (config.yaml, VoteIngress).

libuv, under uvloop, accepts one connection per loop turn (libuv/libuv#3696). A replica whose
loop turns are long because it is busy with batches then leaves new connections, HAProxy's health
checks among them, in the kernel's accept queue, where the write budget cannot see or shed them.
In `make chaos` that made 250 batches at once wait up to 48 s before the replica read them.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import uvloop
import yaml

ROOT = Path(__file__).resolve().parents[3]


def accepted_after_turns(
    new_loop: Callable[[], asyncio.AbstractEventLoop], clients: int = 50, turns: int = 10
) -> int:
    """Connections a server on this loop has accepted after `turns` turns of its loop, with
    `clients` connections already waiting in the kernel's accept queue."""
    accepted = 0

    class Counting(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            nonlocal accepted
            accepted += 1

    async def scenario() -> int:
        server = await asyncio.get_running_loop().create_server(
            Counting, "127.0.0.1", 0, backlog=128
        )
        port = server.sockets[0].getsockname()[1]
        # Blocking connects complete in the kernel (the handshake needs no accept()), so every
        # connection is waiting before the loop turns once.
        waiting = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(clients)]
        try:
            for _ in range(turns):
                await asyncio.sleep(0)  # one turn of the loop
            return accepted
        finally:
            for connection in waiting:
                connection.close()
            server.close()

    loop = new_loop()
    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()


def test_asyncio_accepts_every_waiting_connection_in_one_turn() -> None:
    assert accepted_after_turns(asyncio.new_event_loop) == 50


def test_uvloop_accepts_one_connection_per_turn() -> None:
    # The premise of the setting below. If a uvloop release accepts them all again, this fails:
    # then the ingress can go back to uvloop (faster for single votes, docs/performance.md).
    assert accepted_after_turns(uvloop.new_event_loop) <= 10


def test_the_ingress_replicas_run_on_asyncio() -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    deployments = {d["name"]: d for app in config["applications"] for d in app["deployments"]}
    env_vars = deployments["VoteIngress"]["ray_actor_options"]["runtime_env"]["env_vars"]
    assert env_vars["RAY_USE_UVLOOP"] == "0"
