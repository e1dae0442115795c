"""Hostile input through Serve, against the real stack (part of the fault and abuse suite).

- schemathesis drives every operation of the app's OpenAPI document: no 5xx, every response
  matches the schema the document gives for its status.
- Strings that look like MongoDB operators, Redis commands, HTML/JS and Unicode edge cases are
  stored and shown verbatim (the MongoDB document, /votes/recent, /results) or rejected with a
  reason; Redis and MongoDB keep their data.
- Limits: exactly 1 MiB vs one byte more, 1000 votes, 200 characters, `limit`, a 100 MB gRPC
  message, an error list too long for a gRPC trailer, a slow-loris body.

The unit-level property tests of the same decoders are in tests/unit/ingress/test_hostile_input.py.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from typing import Any

import grpc
import pytest
import redis
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from devkit.waiting import wait_until
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.grpc_stubs import votes_pb2_grpc as pb_grpc
from serve_app.ingress.limits import MAX_BODY_BYTES
from tests.conftest import ROOT, Pipeline

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def channel(pipeline: Pipeline) -> Any:
    with grpc.insecure_channel(pipeline.grpc_target) as channel:
        yield channel


@pytest.fixture(scope="module")
def stub(channel: Any) -> Any:
    return pb_grpc.VoteServiceStub(channel)


def suffix() -> str:
    return uuid.uuid4().hex[:8]


# ---- 9. schemathesis against the running app's OpenAPI document --------------------------------
# schemathesis 4.32.5's own pytest integration (`schemathesis.pytest.from_fixture` +
# `@schema.parametrize()`) sets `request.node._nodeid`, which pytest 9 no longer has; so each
# operation gets a plain parametrized test that runs schemathesis' Hypothesis strategy for it.

OPERATIONS = [
    ("POST", "/votes"),
    ("POST", "/insert"),
    ("POST", "/rust/insert"),
    ("POST", "/grpc/insert"),
    ("POST", "/votes/batch"),
    ("GET", "/results"),
    ("GET", "/votes/recent"),
    ("GET", "/healthz"),
]
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema(pipeline: Pipeline) -> Any:
    return schemathesis.openapi.from_url(f"{pipeline.http.base_url}/openapi.json", timeout=30)


def test_the_document_lists_exactly_the_contract_operations(api_schema: Any) -> None:
    # GET / (the live page) and /events (an endless stream) are deliberately not in it.
    listed = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert listed == set(OPERATIONS)


@pytest.mark.parametrize(
    "mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"]
)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_answers_within_its_schema(
    api_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    if mode is GenerationMode.NEGATIVE and not (operation.query or operation.body):
        pytest.skip("nothing to make invalid: the operation has no parameters")

    @settings(
        max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.call_and_validate(checks=CHECKS, timeout=30)

    run()


# ---- 10. hostile strings: verbatim, or rejected with a reason ------------------------------------

HOSTILE = [
    "$gt",
    "$where",
    "$ne",
    '{"$ne": null}',
    "$where: function() { return true }",
    "a.b.$c",
    "FLUSHALL",
    "*1 $8 FLUSHALL",
    "EVAL \"redis.call('flushall')\" 0",
    "votes:total",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "'; DROP TABLE votes; --",
    "{{7*7}}",
    "${jndi:ldap://x/a}",
    "\u202eevil\u202c",
    "e\u0301\u0301\u0301",
    "👩\u200d👩\u200d👧\u200d👦",
    "\ufeffBOM",
    "\uffff\U0010ffff",
    "line\u2028sep\u2029para",
    "日本語のバンド",
    "Zalgo" + "\u0336" * 150,
]
REJECTED = {  # text -> the code point the error names
    "FLUSHALL\r\nDEL votes:total": "U+000D",
    "*1\r\n$8\r\nFLUSHALL": "U+000D",
    "a\x00b": "U+0000",
    "esc\x1b[31mred": "U+001B",
    "c1\x85x": "U+0085",
}


@pytest.fixture(scope="module")
def hostile_votes(pipeline: Pipeline, stub: Any, redis_client: redis.Redis) -> dict[str, Any]:
    """Every hostile string cast over HTTP and over gRPC, as band and (made unique) album."""
    canary = f"canary:{suffix()}"
    redis_client.set(canary, "alive")
    tag = suffix()
    sent: dict[str, tuple[str, str]] = {}  # vote_id -> (name, album)
    before = pipeline.results()["by_band"]
    for text in HOSTILE:
        album = f"{text} {tag}"
        response = pipeline.http.post(
            "/votes", json={"name": text, "album": album, "year": 1999, "rank": 1}
        )
        assert response.status_code == 202, (text, response.text)
        sent[response.json()["vote_id"]] = (text, album)
        reply = stub.Cast(pb.Vote(name=text, album=album + " grpc", year=2000, rank=2), timeout=15)
        sent[reply.vote_id] = (text, album + " grpc")
    return {"sent": sent, "canary": canary, "tag": tag, "before": before}


def test_hostile_strings_are_stored_verbatim(hostile_votes: dict[str, Any], mongo_db: Any) -> None:
    sent = hostile_votes["sent"]
    votes = mongo_db["votes"]
    wait_until(
        lambda: votes.count_documents({"_id": {"$in": list(sent)}}) == len(sent),
        30,
        f"{len(sent)} hostile votes in the vote log",
    )
    for document in votes.find({"_id": {"$in": list(sent)}}):
        assert (document["name"], document["album"]) == sent[document["_id"]]
    # Stored as plain strings: an equality query on the text finds them.
    for text in ("$gt", '{"$ne": null}', "<script>alert(1)</script>", "\u202eevil\u202c"):
        assert votes.count_documents({"name": text, "album": {"$regex": hostile_votes["tag"]}}) == 2


def test_hostile_strings_are_shown_verbatim(
    pipeline: Pipeline, hostile_votes: dict[str, Any]
) -> None:
    sent = hostile_votes["sent"]

    def recent() -> dict[str, Any]:
        votes = pipeline.http.get("/votes/recent", params={"limit": 100}).json()["votes"]
        found = {v["vote_id"]: v for v in votes if v["vote_id"] in sent}
        return found if len(found) == len(sent) else {}

    shown = wait_until(recent, 30, "the hostile votes in /votes/recent")
    for vote_id, vote in shown.items():
        assert (vote["name"], vote["album"]) == sent[vote_id]

    def counted() -> dict[str, Any]:
        results = pipeline.results()
        return results if all(album in results["by_album"] for _, album in sent.values()) else {}

    results = wait_until(counted, 30, "the hostile votes in /results")
    for _, album in sent.values():
        assert results["by_album"][album] == 1
    for text in HOSTILE:
        assert results["by_band"][text] == hostile_votes["before"].get(text, 0) + 2


def test_redis_and_mongo_keep_their_data(
    pipeline: Pipeline, hostile_votes: dict[str, Any], redis_client: redis.Redis, mongo_db: Any
) -> None:
    assert redis_client.get(hostile_votes["canary"]) == b"alive"  # no FLUSHALL ran
    assert int(redis_client.get("votes:total")) >= len(hostile_votes["sent"])
    assert redis_client.type("votes:by_band") == b"hash"
    assert mongo_db["votes"].count_documents({}) >= len(hostile_votes["sent"])
    assert pipeline.http.get("/healthz").status_code == 200
    redis_client.delete(hostile_votes["canary"])


def test_json_answers_are_json_and_the_page_is_static(pipeline: Pipeline) -> None:
    for path in ("/results", "/votes/recent", "/healthz"):
        assert pipeline.http.get(path).headers["content-type"] == "application/json"
    page = pipeline.http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "alert(1)" not in page.text  # names reach the page only as data (textContent)


@pytest.mark.parametrize(("text", "code_point"), REJECTED.items(), ids=list(REJECTED))
def test_control_characters_are_rejected_with_a_reason(
    pipeline: Pipeline, stub: Any, text: str, code_point: str
) -> None:
    response = pipeline.http.post(
        "/votes", json={"name": text, "album": "a", "year": 1999, "rank": 1}
    )
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "name"] and code_point in error["msg"]
    with pytest.raises(grpc.RpcError) as info:
        stub.Cast(pb.Vote(name=text, album="a", year=1999, rank=1), timeout=15)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == f"name: must not contain control characters (found {code_point})"


@pytest.mark.parametrize("value", [{"$ne": None}, {"$gt": ""}, ["$where"]])
def test_operator_objects_are_rejected_not_interpreted(pipeline: Pipeline, value: Any) -> None:
    response = pipeline.http.post(
        "/votes", json={"name": value, "album": "a", "year": 1999, "rank": 1}
    )
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["body", "name"], "msg": "must be a string", "type": "string_type"}
    ]


# ---- 11. limits -------------------------------------------------------------------------------


def padded_vote(size: int, name: str) -> bytes:
    """A valid vote padded with JSON whitespace to exactly `size` bytes."""
    body = json.dumps({"name": name, "album": "Pan", "year": 2012, "rank": 1}).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_of_exactly_1_mib_is_taken_and_one_byte_more_is_413(
    pipeline: Pipeline, chunked: bool
) -> None:
    name = f"MiB {suffix()}"
    for size, status in ((MAX_BODY_BYTES, 202), (MAX_BODY_BYTES + 1, 413)):
        body = padded_vote(size, name)
        assert len(body) == size
        content: Any = (
            iter([body[i : i + 65536] for i in range(0, size, 65536)]) if chunked else body
        )
        response = pipeline.http.post(
            "/votes", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == status, response.text[:200]
        if status == 413:
            assert response.json() == {"detail": "request body exceeds 1048576 bytes"}


def test_a_batch_of_1000_is_taken(pipeline: Pipeline) -> None:
    votes = [{"name": f"Batch {suffix()}", "album": "a" * 200, "year": 2000, "rank": 100}] * 1000
    response = pipeline.http.post("/votes/batch", json={"votes": votes})
    assert response.status_code == 202 and response.json()["accepted"] == 1000


@pytest.mark.parametrize(("length", "status"), [(200, 202), (201, 422)])
def test_field_length_limit(pipeline: Pipeline, length: int, status: int) -> None:
    name = ("😀" * length)[:length]
    response = pipeline.http.post(
        "/votes", json={"name": name, "album": f"len {suffix()}", "year": 2000, "rank": 1}
    )
    assert response.status_code == status


@pytest.mark.parametrize(
    ("limit", "status"),
    [("1", 200), ("100", 200), ("101", 422), (str(10**30), 422), ("1e2", 422), ("", 422)],
)
def test_recent_limit_bounds(pipeline: Pipeline, limit: str, status: int) -> None:
    response = pipeline.http.get("/votes/recent", params={"limit": limit})
    assert response.status_code == status
    if status == 200:
        assert len(response.json()["votes"]) <= int(limit)


def test_grpc_invalid_batch_details_fit_in_a_trailer(stub: Any) -> None:
    """1000 invalid votes: INVALID_ARGUMENT naming the first errors, not a client-side
    RESOURCE_EXHAUSTED because the trailer exceeded 16 KiB."""
    bad = pb.Vote(name="", album="", year=1, rank=0, vote_id="bad id")
    with pytest.raises(grpc.RpcError) as info:
        stub.CastBatch(pb.VoteBatch(votes=[bad] * 1000), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("votes[0].name: must not be empty")
    assert info.value.details().endswith("more errors")


def test_a_100_mb_grpc_message_is_refused_without_harm(
    pipeline: Pipeline, channel: Any, stub: Any
) -> None:
    """~8 million tiny votes in one CastBatch. With RAY_SERVE_GRPC_MAX_MESSAGE_SIZE set (make run,
    the tests, Kubernetes) the proxy refuses it unread; without, the ingress refuses it on the
    vote count. Either way: quickly, and the server keeps serving."""
    vote = pb.Vote(name="a", album="b", year=2000, rank=1).SerializeToString()
    field = b"\x0a" + bytes([len(vote)]) + vote  # VoteBatch.votes, field 1, length-delimited
    raw = field * ((100 * 1024 * 1024) // len(field))
    cast_batch = channel.unary_unary(
        "/votes.v1.VoteService/CastBatch",
        request_serializer=None,
        response_deserializer=pb.BatchReply.FromString,
    )
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        cast_batch(raw, timeout=120)
    took = time.monotonic() - started
    assert info.value.code() in (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INVALID_ARGUMENT,
    ), info.value.details()
    assert took < 60, f"refusing 100 MB took {took:.0f}s"
    assert stub.Cast(
        pb.Vote(name=f"After {suffix()}", album="b", year=2000, rank=1), timeout=15
    ).vote_id
    assert pipeline.http.get("/healthz").status_code == 200


def test_a_slow_loris_body_is_cut_off_by_the_request_timeout(pipeline: Pipeline) -> None:
    """Headers, then one byte a second of a 1000-byte body: Serve's HTTP proxy answers 408
    after config.yaml's request_timeout_s, and serves others meanwhile."""
    timeout_s = yaml.safe_load((ROOT / "config.yaml").read_text())["http_options"][
        "request_timeout_s"
    ]
    host, port = pipeline.http.base_url.host, pipeline.http.base_url.port
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(
            b"POST /votes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        sock.settimeout(1.0)
        started = time.monotonic()
        answer = b""
        while time.monotonic() - started < timeout_s + 15 and b"\r\n\r\n" not in answer:
            try:
                sock.sendall(b" ")
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
            except TimeoutError:
                pass
            except OSError:
                break
            if abs(time.monotonic() - started - timeout_s / 2) < 1:  # others are served meanwhile
                assert pipeline.http.get("/healthz").status_code == 200
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), (answer[:100], took)
    assert timeout_s - 1 <= took <= timeout_s + 10
