"""The plain peers run on the event loop of Serve's ingress replica (asyncio, decision 0001);
the HTTP peer's uvloop scenarios are extra and say so. No process is started here."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bench.harness.plan import GROUPS
from bench.scenarios import peers


class FakeBench:
    def __init__(self) -> None:
        self.recorded: dict[str, dict[str, Any]] = {}

    def new_topic(self, what: str) -> str:
        return f"topic-{what}"

    def repeat(self, name: str, run: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
        return [run()]

    def ingest(self, name: str, **how: Any) -> dict[str, Any]:
        return {"votes_per_s": 1.0}

    def record(self, name: str, runs: list[dict[str, Any]], **extra: Any) -> None:
        self.recorded[name] = extra


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """The argv of every peer process plain_peers starts, by its name."""
    argvs: dict[str, list[str]] = {}

    @contextlib.contextmanager
    def peer_process(_bench: Any, name: str, argv: list[str], *_a: Any, **_k: Any) -> Iterator[Any]:
        argvs[name] = argv
        yield None

    monkeypatch.setattr(peers, "peer_process", peer_process)
    monkeypatch.setattr(peers, "warm_http", lambda _address: None)
    monkeypatch.setattr(peers, "free_port", lambda _range: 38555)
    return argvs


def loop_of(argv: list[str]) -> str | None:
    return argv[argv.index("--loop") + 1] if "--loop" in argv else None


def test_the_plain_http_peer_runs_on_asyncio(started: dict[str, list[str]]) -> None:
    bench = FakeBench()
    peers.plain_peers(bench, ["plain_http_peer", "plain_http_peer_batch"])  # type: ignore[arg-type]
    (argv,) = started.values()
    assert "uvicorn" in argv
    assert loop_of(argv) == "asyncio"  # uvicorn's default ("auto") would pick uvloop
    assert bench.recorded["plain_http_peer"]["event_loop"] == "asyncio"


def test_the_uvloop_peer_is_an_extra_scenario_named_so(started: dict[str, list[str]]) -> None:
    assert {"plain_http_peer_uvloop", "plain_http_peer_batch_uvloop"} <= set(GROUPS["peer"])
    bench = FakeBench()
    peers.plain_peers(bench, ["plain_http_peer", "plain_http_peer_uvloop"])  # type: ignore[arg-type]
    assert sorted(loop_of(argv) for argv in started.values()) == ["asyncio", "uvloop"]
    assert bench.recorded["plain_http_peer_uvloop"]["event_loop"] == "uvloop"
    assert "uvloop" in bench.recorded["plain_http_peer_uvloop"]["server"]


def test_the_grpc_peer_is_labelled_asyncio(started: dict[str, list[str]]) -> None:
    bench = FakeBench()
    peers.plain_peers(bench, ["plain_grpc_peer"])  # type: ignore[arg-type]
    assert bench.recorded["plain_grpc_peer"]["event_loop"] == "asyncio"


def test_an_unknown_loop_is_refused() -> None:
    with pytest.raises(ValueError, match="asyncio or uvloop"):
        peers.plain_http_argv(38555, "auto")
