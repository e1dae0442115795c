"""Through Serve, against the real stack: votes in over HTTP and gRPC, records out of Kafka."""

from __future__ import annotations

import json
import uuid
from typing import Any

import grpc
import pytest

from devkit.kafka import read_all
from devkit.waiting import wait_until
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.grpc_stubs import votes_pb2_grpc as pb_grpc
from tests.conftest import Pipeline

pytestmark = pytest.mark.e2e

# POST /insert and its aliases, the original contest's Ingress paths: one route, three paths.
INSERT_PATHS = ["/insert", "/rust/insert", "/grpc/insert"]


def band() -> str:
    """A band name no other test uses, so counts can be checked exactly."""
    return f"Banda {uuid.uuid4().hex[:10]}"


def vote(**overrides: Any) -> dict[str, Any]:
    return {"name": band(), "album": "Pan", "year": 2012, "rank": 1} | overrides


@pytest.fixture(scope="module")
def stub(pipeline: Pipeline) -> Any:
    channel = grpc.insecure_channel(pipeline.grpc_target)
    yield pb_grpc.VoteServiceStub(channel)
    channel.close()


def records_by_id(pipeline: Pipeline) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for message in read_all(pipeline.names.topic):
        found.setdefault(message.key().decode(), []).append(message)
    return found


def test_http_vote_becomes_one_kafka_record(pipeline: Pipeline) -> None:
    sent = vote(name="  Bohemia Suburbana  ", vote_id=f"http-{uuid.uuid4()}")
    response = pipeline.http.post("/votes", json=sent)
    assert response.status_code == 202, response.text
    assert response.json() == {"vote_id": sent["vote_id"], "status": "accepted"}

    (message,) = records_by_id(pipeline)[sent["vote_id"]]
    value = json.loads(message.value())
    assert value["name"] == "Bohemia Suburbana" and value["source"] == "http"
    assert (value["album"], value["year"], value["rank"]) == ("Pan", 2012, 1)
    assert value["received_at"].endswith("Z")
    assert dict(message.headers())["content-type"] == b"application/json"


@pytest.mark.parametrize("path", INSERT_PATHS)
def test_insert_accepts_the_original_string_format(pipeline: Pipeline, path: str) -> None:
    name = band()
    response = pipeline.http.post(
        path, json={"name": name, "album": "Alux", "year": "1983", "rank": "7"}
    )
    assert response.status_code == 202, response.text
    vote_id = response.json()["vote_id"]
    (message,) = records_by_id(pipeline)[vote_id]
    value = json.loads(message.value())
    assert (value["year"], value["rank"]) == (1983, 7)
    wait_until(lambda: pipeline.results()["by_band"].get(name) == 1, 30, f"{name} counted")


def test_http_batch_becomes_one_record_per_vote(pipeline: Pipeline) -> None:
    votes = [vote(rank=i + 1) for i in range(25)]
    response = pipeline.http.post("/votes/batch", json={"votes": votes})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 25 and len(set(body["vote_ids"])) == 25
    found = records_by_id(pipeline)
    assert all(len(found[vote_id]) == 1 for vote_id in body["vote_ids"])


def test_grpc_cast_and_batch_become_records(pipeline: Pipeline, stub: Any) -> None:
    reply = stub.Cast(pb.Vote(name=band(), album="Pan", year=2012, rank=3), timeout=15)
    batch = stub.CastBatch(
        pb.VoteBatch(
            votes=[
                pb.Vote(
                    name=band(),
                    album="Pan",
                    year=2001,
                    rank=5,
                    vote_id=f"g-{i}-{uuid.uuid4().hex[:6]}",
                )
                for i in range(10)
            ]
        ),
        timeout=15,
    )
    assert batch.accepted == 10 and all(v.startswith("g-") for v in batch.vote_ids)
    found = records_by_id(pipeline)
    for vote_id in [reply.vote_id, *batch.vote_ids]:
        (message,) = found[vote_id]
        assert json.loads(message.value())["source"] == "grpc"
        assert dict(message.headers())["source"] == b"grpc"


MARK = "poison-" + uuid.uuid4().hex[:8]
BIG = "x" * (1024 * 1024 + 10)

BAD_HTTP_REQUESTS: list[tuple[str, str, dict[str, Any], int, str]] = [
    # (id, path, httpx kwargs, status, text the error must contain)
    (
        "malformed-json",
        "/votes",
        {"content": b'{"name": "a",', "headers": {"content-type": "application/json"}},
        422,
        "json",
    ),
    (
        "not-json-content-type",
        "/votes",
        {"content": b"name=a", "headers": {"content-type": "application/x-www-form-urlencoded"}},
        415,
        "application/json",
    ),
    ("json-array", "/votes", {"json": [1, 2]}, 422, "body"),
    ("missing-field", "/votes", {"json": {"name": MARK, "album": "a", "year": 2000}}, 422, "rank"),
    ("unknown-field", "/votes", {"json": vote(name=MARK, extra="x")}, 422, "extra"),
    ("year-wrong-type", "/votes", {"json": vote(name=MARK, year=[1999])}, 422, "year"),
    ("year-float", "/votes", {"json": vote(name=MARK, year=1999.5)}, 422, "year"),
    ("year-out-of-range", "/votes", {"json": vote(name=MARK, year=1800)}, 422, "year"),
    ("rank-out-of-range", "/votes", {"json": vote(name=MARK, rank=101)}, 422, "rank"),
    *[
        (f"rank-not-digits {path}", path, {"json": vote(name=MARK, rank="1e2")}, 422, "rank")
        for path in INSERT_PATHS
    ],
    *[
        (
            f"not-json-content-type {path}",
            path,
            {"content": b"name=a", "headers": {"content-type": "text/plain"}},
            415,
            "application/json",
        )
        for path in INSERT_PATHS
    ],
    *[
        (
            f"huge-body {path}",
            path,
            {
                "content": ('{"name": "' + BIG + '"}').encode(),
                "headers": {"content-type": "application/json"},
            },
            413,
            "exceeds",
        )
        for path in INSERT_PATHS
    ],
    ("mongo-operator", "/votes", {"json": vote(name={"$gt": ""}, album=MARK)}, 422, "name"),
    ("control-character", "/votes", {"json": vote(name=MARK + "\x07")}, 422, "control"),
    ("name-too-long", "/votes", {"json": vote(name=MARK + "x" * 200)}, 422, "200"),
    ("empty-name", "/votes", {"json": vote(name="   ", album=MARK)}, 422, "name"),
    ("bad-vote-id", "/votes", {"json": vote(name=MARK, vote_id="has space")}, 422, "vote_id"),
    (
        "huge-body",
        "/votes",
        {
            "content": ('{"name": "' + BIG + '"}').encode(),
            "headers": {"content-type": "application/json"},
        },
        413,
        "exceeds",
    ),
    ("empty-batch", "/votes/batch", {"json": {"votes": []}}, 422, "votes"),
    ("batch-1001", "/votes/batch", {"json": {"votes": [vote(name=MARK)] * 1001}}, 422, "1000"),
    (
        "batch-one-bad",
        "/votes/batch",
        {"json": {"votes": [vote(name=MARK), vote(name=MARK, rank=0)]}},
        422,
        "rank",
    ),
    ("batch-not-list", "/votes/batch", {"json": {"votes": vote(name=MARK)}}, 422, "votes"),
]


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "says"),
    [case[1:] for case in BAD_HTTP_REQUESTS],
    ids=[case[0] for case in BAD_HTTP_REQUESTS],
)
def test_bad_http_request_is_rejected_with_a_reason(
    pipeline: Pipeline, path: str, kwargs: dict[str, Any], status: int, says: str
) -> None:
    response = pipeline.http.post(path, **kwargs)
    assert response.status_code == status, response.text
    assert says.lower() in response.text.lower()
    if status == 422:
        details = response.json()["detail"]
        assert details and all({"loc", "msg", "type"} <= set(d) for d in details)


def test_batch_error_names_every_invalid_index(pipeline: Pipeline) -> None:
    votes = [vote(name=MARK), vote(name=MARK, year=1), vote(name=MARK), vote(name=MARK, rank=0)]
    response = pipeline.http.post("/votes/batch", json={"votes": votes})
    assert response.status_code == 422
    locations = {tuple(d["loc"]) for d in response.json()["detail"]}
    assert locations == {("body", "votes", 1, "year"), ("body", "votes", 3, "rank")}


@pytest.mark.parametrize(
    ("message", "says"),
    [
        (pb.Vote(name="", album=MARK, year=2000, rank=1), "name"),
        (pb.Vote(name=MARK, album="a", year=1800, rank=1), "year"),
        (pb.Vote(name=MARK, album="a", year=2000, rank=0), "rank"),
        (pb.Vote(name=MARK + "\x00", album="a", year=2000, rank=1), "control"),
        (pb.Vote(name=MARK, album="a", year=2000, rank=1, vote_id="bad id"), "vote_id"),
    ],
)
def test_bad_grpc_vote_is_invalid_argument(stub: Any, message: Any, says: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Cast(message, timeout=15)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in info.value.details()


def test_bad_grpc_batches_are_invalid_argument(stub: Any) -> None:
    good = pb.Vote(name=MARK, album="a", year=2000, rank=1)
    for votes, says in (
        ([], "votes"),
        ([good] * 1001, "votes"),
        ([good, pb.Vote(name=MARK, album="a", year=3000, rank=1)], "votes[1].year"),
    ):
        with pytest.raises(grpc.RpcError) as info:
            stub.CastBatch(pb.VoteBatch(votes=votes), timeout=15)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert says in info.value.details()


def test_rejected_requests_produced_nothing(pipeline: Pipeline, stub: Any) -> None:
    # Runs after the tables above (pytest keeps file order): no record carries their marker.
    leaked = [m.value() for m in read_all(pipeline.names.topic) if MARK.encode() in m.value()]
    assert leaked == []


def test_openapi_document_lists_the_contract_routes(pipeline: Pipeline) -> None:
    paths = pipeline.http.get("/openapi.json").json()["paths"]
    for path in ("/votes", "/votes/batch", *INSERT_PATHS, "/results", "/votes/recent", "/healthz"):
        assert path in paths
    # The aliases: marked as compatibility routes, not deprecated, and /insert's answers.
    for path in INSERT_PATHS[1:]:
        operation = paths[path]["post"]
        assert operation["tags"] == ["compatibility"] and "/insert" in operation["summary"]
        assert not operation.get("deprecated", False)
        assert operation["responses"] == paths["/insert"]["post"]["responses"]
