"""The seed peers (bench/peers/seed*.py) against the real broker: what they accept reaches Kafka.

Compiles nothing: a peer that `make bench-peers` has not built from the current sources is
skipped with the reason. Each test runs its peers on a Kafka topic of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from bench.harness.processes import Proc
from bench.peers import seed, seed_build
from devkit.kafka import create_topics, delete_topics, read_all, topic_records
from devkit.names import RunNames, new_run_id
from devkit.net import free_port
from serve_app.domain.votes import _HEADERS, decode_record, encode_record
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.grpc_stubs import votes_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

CALL_TIMEOUT_S = 15.0


def binary_or_skip(name: str) -> Path:
    binary = seed_build.built(name)
    if isinstance(binary, str):
        pytest.skip(binary)
    return binary


@pytest.fixture
def topic(stack: Any, names: RunNames) -> Iterator[str]:
    name = names.topic_for(f"seed-{new_run_id()}")
    create_topics([name])
    yield name
    delete_topics([name])


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[list[Proc]]:
    """Peers a test started; stopped (by PID) at its end, whatever happened."""
    started: list[Proc] = []
    yield started
    for proc in reversed(started):
        proc.stop(grace_s=10)


def start(peers: list[Proc], tmp_path: Path, name: str, **kwargs: Any) -> tuple[Proc, int]:
    port = free_port()
    proc = seed.start(
        name,
        port=port,
        binary=binary_or_skip(name),
        log_path=tmp_path / f"{name}.log",
        timeout_s=30,
        **kwargs,
    )
    peers.append(proc)
    return proc, port


def check_records(topic: str, accepted_ids: list[str], source: str) -> None:
    """Exactly the accepted votes are in the topic, each in our record format byte for byte."""
    assert topic_records(topic) == len(accepted_ids)  # a reply means Kafka acknowledged
    records = read_all(topic, timeout_s=30)
    assert sorted(record.key().decode() for record in records) == sorted(accepted_ids)
    for record in records:
        vote = decode_record(record.value())
        assert vote.source == source and vote.vote_id == record.key().decode()
        assert encode_record(vote).value == record.value()  # same JSON, order and timestamp format
        assert record.headers() == _HEADERS[source]


def test_seed_go_grpc_casts_reach_kafka(topic: str, peers: list[Proc], tmp_path: Path) -> None:
    _, port = start(peers, tmp_path, "seed_go_grpc", topic=topic)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.VoteServiceStub(channel)
        accepted = [
            stub.Cast(
                pb.Vote(name="Seed Band", album="Pan", year=2012, rank=1), timeout=CALL_TIMEOUT_S
            ).vote_id
        ]
        edges = pb.Vote(
            name="  Trimmed  ", album="Ñandú 🎸", year=1900, rank=100, vote_id="seed-it-1"
        )
        accepted.append(stub.Cast(edges, timeout=CALL_TIMEOUT_S).vote_id)
        assert accepted[1] == "seed-it-1" and len(accepted[0]) == 36  # a UUID4 when absent
        batch = stub.CastBatch(
            pb.VoteBatch(
                votes=[
                    pb.Vote(name="B", album="A", year=2000, rank=2, vote_id=f"seed-it-b{i}")
                    for i in range(3)
                ]
            ),
            timeout=CALL_TIMEOUT_S,
        )
        assert batch.accepted == 3
        assert list(batch.vote_ids) == ["seed-it-b0", "seed-it-b1", "seed-it-b2"]
        accepted += list(batch.vote_ids)

        with pytest.raises(grpc.RpcError) as invalid:
            stub.Cast(pb.Vote(name="B", album="A", year=2000, rank=0), timeout=CALL_TIMEOUT_S)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert invalid.value.details().startswith("rank:")
        with pytest.raises(grpc.RpcError) as invalid_batch:  # all or nothing
            stub.CastBatch(
                pb.VoteBatch(
                    votes=[
                        pb.Vote(name="B", album="A", year=2000, rank=1),
                        pb.Vote(name=" ", album="A", year=2000, rank=1),
                    ]
                ),
                timeout=CALL_TIMEOUT_S,
            )
        assert invalid_batch.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert invalid_batch.value.details().startswith("votes[1].name:")
        with pytest.raises(grpc.RpcError) as reads:
            stub.GetResults(pb.ResultsRequest(), timeout=CALL_TIMEOUT_S)
        assert reads.value.code() == grpc.StatusCode.UNIMPLEMENTED
    check_records(topic, accepted, "grpc")
    trimmed = next(decode_record(r.value()) for r in read_all(topic) if r.key() == b"seed-it-1")
    assert (trimmed.name, trimmed.album) == ("Trimmed", "Ñandú 🎸")


def test_seed_go_http_client_inserts_through_grpc(
    topic: str, peers: list[Proc], tmp_path: Path
) -> None:
    _, grpc_port = start(peers, tmp_path, "seed_go_grpc", topic=topic)
    _, http_port = start(peers, tmp_path, "seed_go_http_client", upstream=f"127.0.0.1:{grpc_port}")
    with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=CALL_TIMEOUT_S) as client:
        assert client.get("/healthz").status_code == 200
        accepted = []
        for body in (
            {"name": "Seed Band", "album": "Pan", "year": "2012", "rank": "1"},
            {"name": "Seed Band", "album": "Pan", "year": 2012, "rank": 3},
            {
                "name": "Seed Band",
                "album": "Pan",
                "year": " 1999 ",
                "rank": "7",
                "vote_id": "seed-it-http-1",
            },
        ):
            response = client.post("/grpc/insert", json=body)
            assert response.status_code == 202, response.text
            accepted.append(response.json()["vote_id"])
        assert accepted[2] == "seed-it-http-1"
        for body, field in (
            ({"name": "B", "album": "A", "year": "1800", "rank": "1"}, "year"),
            ({"name": "B", "album": "A", "year": "2000", "rank": "x"}, "rank"),
            ({"name": "B", "album": "A", "year": "2000"}, "rank"),
        ):
            response = client.post("/grpc/insert", json=body)
            assert response.status_code == 422, response.text
            assert response.json()["detail"].startswith(f"{field}:")
    check_records(topic, accepted, "grpc")


def test_seed_rust_http_inserts_reach_kafka(topic: str, peers: list[Proc], tmp_path: Path) -> None:
    _, port = start(peers, tmp_path, "seed_rust_http", topic=topic)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=CALL_TIMEOUT_S) as client:
        accepted = []
        for body in (
            {"name": "Seed Band", "album": "Pan", "year": "2012", "rank": "1"},
            {
                "name": "Seed Band",
                "album": "Pan",
                "year": 2012,
                "rank": 3,
                "vote_id": "seed-it-rust-1",
            },
        ):
            response = client.post("/rust/insert", json=body)
            assert response.status_code == 202, response.text
            accepted.append(response.json()["vote_id"])
        assert accepted[1] == "seed-it-rust-1"
        batch = client.post(
            "/votes/batch",
            json={
                "votes": [
                    {"name": "B", "album": "A", "year": "2000", "rank": "2"},
                    {"name": "C", "album": "A", "year": 2001, "rank": 4},
                ]
            },
        )
        assert batch.status_code == 202 and batch.json()["accepted"] == 2, batch.text
        accepted += batch.json()["vote_ids"]
        invalid = client.post(
            "/rust/insert", json={"name": "B", "album": "A", "year": "1800", "rank": "1"}
        )
        assert invalid.status_code == 422, invalid.text
        assert [error["loc"] for error in invalid.json()["detail"]] == [["body", "year"]]
        invalid_batch = client.post(
            "/votes/batch",
            json={
                "votes": [
                    {"name": "B", "album": "A", "year": "2000", "rank": "2"},
                    {"name": "B", "album": ""},
                ]
            },
        )
        assert invalid_batch.status_code == 422, invalid_batch.text  # nothing of it is accepted
    check_records(topic, accepted, "http")


def test_seed_go_grpc_refuses_to_start_without_kafka(tmp_path: Path, peers: list[Proc]) -> None:
    nobody = free_port()  # nothing listens there: connection refused at once
    with pytest.raises(RuntimeError, match=r"(?s)exited with status 1.*kafka"):
        start(peers, tmp_path, "seed_go_grpc", topic="votes-none", bootstrap=f"127.0.0.1:{nobody}")
