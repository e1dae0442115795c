"""Peers: the same ingestion without Ray (plain Python over uvicorn and grpc.aio) and the seed's
Rust HTTP and Go gRPC servers (bench/peers/seed*.py builds them), loaded like Serve."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bench.harness.env import PORT_RANGE, PY, log
from bench.harness.plan import GROUPS, SEED_SCENARIOS
from bench.harness.processes import Proc
from bench.harness.serving import warm_http
from bench.peers import seed, seed_build
from devkit.kafka import KAFKA
from devkit.net import free_port, port_open
from devkit.waiting import wait_until

if TYPE_CHECKING:
    from bench.harness.runner import Bench


def peer_env(topic: str) -> dict[str, str]:
    """The environment of a peer: ours without any VOTES_ setting, then Kafka and the topic."""
    return {k: v for k, v in os.environ.items() if not k.startswith("VOTES_")} | {
        "VOTES_KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "VOTES_KAFKA_TOPIC": topic,
    }


@contextlib.contextmanager
def peer_process(
    bench: Bench,
    name: str,
    argv: list[str],
    port: int,
    env: dict[str, str],
    label: str = "peer",
    keep: dict[int, str] | None = None,
) -> Iterator[Proc]:
    """A peer process, counted by the CPU meter as `label` (next to `keep`) while it serves."""
    peer = Proc(name, argv, env=env)
    bench.measured_pids = dict(keep or {}) | {peer.pid: label}
    try:
        wait_until(
            lambda: port_open("127.0.0.1", port),
            60,
            f"the {name} peer",
            every_s=0.25,
            alive=peer.alive,
        )
        yield peer
    finally:
        peer.stop()
        bench.measured_pids = dict(keep or {})


# The event loop of each plain HTTP scenario: asyncio like Serve's ingress replica
# (RAY_USE_UVLOOP=0, docs/decisions/0001-ingress-on-asyncio.md); the _uvloop ones are extra.
HTTP_PEER_LOOPS = {
    "plain_http_peer": "asyncio",
    "plain_http_peer_batch": "asyncio",
    "plain_http_peer_uvloop": "uvloop",
    "plain_http_peer_batch_uvloop": "uvloop",
}


def plain_http_argv(port: int, loop: str) -> list[str]:
    """uvicorn serving bench.peers.plain_http on `loop` ("asyncio" or "uvloop"), never its
    default ("auto" picks uvloop when installed)."""
    if loop not in ("asyncio", "uvloop"):
        raise ValueError(f"the plain HTTP peer's loop must be asyncio or uvloop (got {loop!r})")
    return [
        PY,
        "-m",
        "uvicorn",
        "bench.peers.plain_http:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        loop,
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def plain_peers(bench: Bench, chosen: list[str]) -> None:
    """plain_{http,grpc}_peer and their batch scenarios: uvicorn+Starlette and grpc.aio, both
    on asyncio; plain_http_peer*_uvloop: the HTTP peer again on uvloop."""
    topic = bench.new_topic("peer")
    env = peer_env(topic)
    for loop in ("asyncio", "uvloop"):
        http_names = [n for n, lp in HTTP_PEER_LOOPS.items() if lp == loop and n in chosen]
        if not http_names:
            continue
        port = free_port(PORT_RANGE)
        with peer_process(bench, f"peer-http-{loop}", plain_http_argv(port, loop), port, env):
            warm_http(("127.0.0.1", port))
            for name in http_names:
                kind = "batch" if "_batch" in name else "single"
                bench.record(
                    name,
                    bench.repeat(
                        name,
                        lambda n=name, k=kind, p=port: bench.ingest(
                            n, protocol="http", kind=k, http=("127.0.0.1", p), topic=topic
                        ),
                    ),
                    path="http",
                    kind=kind,
                    server=f"uvicorn+starlette, 1 worker, {loop} loop",
                    event_loop=loop,
                )
    grpc_names = [n for n in ("plain_grpc_peer", "plain_grpc_peer_batch") if n in chosen]
    if grpc_names:
        port = free_port(PORT_RANGE)
        with peer_process(
            bench, "peer-grpc", [PY, "-m", "bench.peers.plain_grpc", "--port", str(port)], port, env
        ):
            for name in grpc_names:
                kind = "batch" if name.endswith("_batch") else "single"
                bench.record(
                    name,
                    bench.repeat(
                        name,
                        lambda n=name, k=kind: bench.ingest(
                            n,
                            protocol="grpc",
                            kind=k,
                            grpc_target=f"127.0.0.1:{port}",
                            topic=topic,
                        ),
                    ),
                    path="grpc",
                    kind=kind,
                    server="grpc.aio, 1 process, asyncio loop",
                    event_loop="asyncio",
                )


def seed_peers(bench: Bench, chosen: list[str]) -> None:
    """The seed's Rust HTTP and Go gRPC peers, built first (skipped without a toolchain)."""
    wanted = [n for n in GROUPS["seed"] if n in chosen]
    log("seed: building the seed's peers (cached after the first build)")
    built: dict[str, Path | str] = seed_build.build(log)
    runnable = []
    for name in wanted:
        missing = [
            f"{b}: {built.get(b)}"
            for b in SEED_SCENARIOS[name][3]
            if not isinstance(built.get(b), Path)
        ]
        if missing:
            bench.skip(name, "; ".join(missing), group="seed")
        else:
            runnable.append(name)
    if not runnable:
        return
    topic = bench.new_topic("seed")
    env = peer_env(topic)

    def argv(peer: str, port: int, upstream: str | None = None) -> list[str]:
        binary = built[peer]
        assert isinstance(binary, Path)
        return seed.command(
            peer, port=port, bootstrap=KAFKA, topic=topic, upstream=upstream, binary=binary
        )

    rust = [n for n in runnable if SEED_SCENARIOS[n][3] == ("seed_rust_http",)]
    if rust:
        port = free_port(PORT_RANGE)
        with peer_process(bench, "seed_rust_http", argv("seed_rust_http", port), port, env):
            seed_scenarios(bench, rust, ("127.0.0.1", port), None, topic)
    go = [n for n in runnable if "seed_go_grpc" in SEED_SCENARIOS[n][3]]
    if go:
        port = free_port(PORT_RANGE)
        target = f"127.0.0.1:{port}"
        with peer_process(bench, "seed_go_grpc", argv("seed_go_grpc", port), port, env) as server:
            seed_scenarios(bench, [n for n in go if n != "seed_go_http_grpc"], None, target, topic)
            if "seed_go_http_grpc" in go:
                client_port = free_port(PORT_RANGE)
                with peer_process(
                    bench,
                    "seed_go_http_client",
                    argv("seed_go_http_client", client_port, target),
                    client_port,
                    env,
                    label="peer_client",
                    keep={server.pid: "peer"},
                ):
                    seed_scenarios(
                        bench, ["seed_go_http_grpc"], ("127.0.0.1", client_port), None, topic
                    )


def seed_scenarios(
    bench: Bench,
    names: list[str],
    http: tuple[str, int] | None,
    grpc_target: str | None,
    topic: str,
) -> None:
    for name in names:
        protocol, kind, path, builds = SEED_SCENARIOS[name]
        bench.record(
            name,
            bench.repeat(
                name,
                lambda n=name, p=protocol, k=kind, h=path: bench.ingest(
                    n,
                    protocol=p,
                    kind=k,
                    http=http,
                    grpc_target=grpc_target,
                    topic=topic,
                    path=h,
                ),
            ),
            path=protocol,
            kind=kind,
            group="seed",
            builds=list(builds),
            route=path or ("votes.v1.VoteService/" + ("CastBatch" if kind == "batch" else "Cast")),
        )
