"""Hostile input and access, without services.

- Property tests: the vote model and its three decoders (HTTP JSON body, Kafka record bytes, gRPC
  message) turn any input into a valid vote or a clear error (a pydantic ValidationError with
  loc/msg, a RecordError with a reason, a 4xx answer, INVALID_ARGUMENT), never anything else.
  The HTTP routes run in-process: the replica's FastAPI app as `build_http_api` makes it, with its
  middleware and exception handlers, over a fake Kafka producer.
- Strings that look like MongoDB operators, Redis commands, HTML/JS or odd Unicode stay verbatim
  through the model and the Kafka record, or are rejected with a reason.
- Limits: body bytes, field lengths, batch size, gRPC batch size and error details.
- Access: the bearer-token check (constant-time, before the body is looked at).
- Credentials: never in settings output, logs, health answers or the repository's files.

tests/e2e/test_hostile_http.py and tests/e2e/test_access.py do the same through Serve.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.testclient import TestClient

from serve_app.domain.fields import TEXT_MAX_CHARS, VOTE_ID_PATTERN
from serve_app.domain.votes import (
    BATCH_MAX_VOTES,
    RECORD_ERROR_MAX_CHARS,
    RecordError,
    Vote,
    VoteBatch,
    VoteRecord,
    accept,
    decode_record,
    describe_errors,
    encode_record,
)
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.ingress import deployment as ingest
from serve_app.ingress import write_side
from serve_app.ingress.admission import WriteBudget
from serve_app.ingress.limits import (
    DRAIN_MAX_BYTES,
    GRPC_MAX_MESSAGE_BYTES,
    MAX_BODY_BYTES,
    BodyLimits,
)
from serve_app.metrics import IngestMetrics
from serve_app.serve_env import SERVE_ENV
from serve_app.settings import Settings, SettingsError, load_settings, redact_url

# serve.ingress's wrapper class has an `async def __del__`; our replicas made without Serve
# trigger it on garbage collection.
pytestmark = pytest.mark.filterwarnings(
    "ignore:coroutine .*ASGIIngressWrapper.__del__.* was never awaited:RuntimeWarning"
)
ROOT = Path(__file__).resolve().parents[3]
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
GOOD = {"name": "Malacates Trebol Shop", "album": "Pan", "year": 2012, "rank": 1}


# ---- an independent statement of what a valid vote is (docs/contract.md, "A vote") ---------------


def text_ok(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    text = value.strip()
    return 1 <= len(text) <= TEXT_MAX_CHARS and not any(
        unicodedata.category(char) in ("Cc", "Cs") for char in text
    )


def number_ok(value: Any, low: int, high: int) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value.strip()):
        value = int(value.strip())
    return isinstance(value, int) and low <= value <= high


def vote_ok(data: Any) -> bool:
    if not isinstance(data, dict) or set(data) - {"name", "album", "year", "rank", "vote_id"}:
        return False
    if not {"name", "album", "year", "rank"} <= set(data):
        return False
    vote_id = data.get("vote_id")
    return (
        text_ok(data["name"])
        and text_ok(data["album"])
        and number_ok(data["year"], 1900, 2100)
        and number_ok(data["rank"], 1, 100)
        and (
            vote_id is None
            or (isinstance(vote_id, str) and re.fullmatch(VOTE_ID_PATTERN, vote_id) is not None)
        )
    )


def assert_valid(vote: Vote | VoteRecord) -> None:
    for text in (vote.name, vote.album):
        assert text == text.strip() and 1 <= len(text) <= TEXT_MAX_CHARS
        assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in text)
    assert type(vote.year) is int and 1900 <= vote.year <= 2100
    assert type(vote.rank) is int and 1 <= vote.rank <= 100
    assert vote.vote_id is None or re.fullmatch(VOTE_ID_PATTERN, vote.vote_id)


def assert_clear(exc: ValidationError) -> None:
    """A clear error: every entry has a location and a message; the one-line form is usable."""
    errors = exc.errors(include_url=False)
    assert errors
    for error in errors:
        assert isinstance(error["loc"], tuple) and isinstance(error["msg"], str) and error["msg"]
    line = describe_errors(exc)
    assert line and line.encode("utf-8")


def validate(make: Callable[[], Any]) -> Any:
    """make() -> the model, or None after checking that its ValidationError is clear."""
    try:
        result = make()
    except ValidationError as exc:
        assert_clear(exc)
        return None
    return result


# ---- strategies ---------------------------------------------------------------------------------

HOSTILE_TEXT = [
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
    "../../etc/passwd",
    "\u202eevil\u202c",
    "e\u0301\u0301\u0301",
    "👩\u200d👩\u200d👧\u200d👦",
    "\ufeffBOM",
    "\uffff",
    "\U0010ffff",
    "Zalgo" + "\u0336" * 150,
    "日本語のバンド",
    "مرحبا",
    "line\u2028sep\u2029para",
]
CONTROL_TEXT = [
    "FLUSHALL\r\nDEL votes:total",
    "*1\r\n$8\r\nFLUSHALL\r\n",
    "a\x00b",
    "tab\there",
    "esc\x1b[31m",
    "del\x7f",
    "c1\x85x",
    "\ud800",
]

texts = st.one_of(
    st.text(max_size=30),
    st.text(max_size=220).map(lambda t: f"  {t}  "),
    st.sampled_from(HOSTILE_TEXT + CONTROL_TEXT),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=195, max_size=205),
    st.just("x" * 200),
    st.just("x" * 201),
    st.just(" " * 500 + "x" + " " * 500),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10))
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
numbers = st.one_of(
    st.integers(),
    st.integers(1890, 2110),
    st.integers(-5, 105),
    st.booleans(),
    st.floats(),
    st.from_regex(r"\s{0,2}[0-9]{1,11}\s{0,2}", fullmatch=True),
    st.text(max_size=6),
    st.sampled_from(["1e3", "0x10", "٣", "１９９９", "+5", "-1", "2000.0", " 7 "]),
)
vote_ids = st.one_of(
    st.none(), st.from_regex(VOTE_ID_PATTERN, fullmatch=True), st.text(max_size=70), st.integers()
)
field_values = {
    "name": texts | json_values,
    "album": texts | json_values,
    "year": numbers | json_values,
    "rank": numbers | json_values,
    "vote_id": vote_ids,
}
vote_like = st.fixed_dictionaries({}, optional=field_values).flatmap(
    lambda d: (
        st.dictionaries(st.text(max_size=8), json_scalars, max_size=2).map(lambda extra: d | extra)
        | st.just(d)
    )
)
# Most generated votes are invalid; these are valid, to check that valid ones get through.
valid_votes = st.fixed_dictionaries(
    {
        "name": st.text(min_size=1, max_size=40).filter(text_ok),
        "album": st.sampled_from([t for t in HOSTILE_TEXT if text_ok(t)]),
        "year": st.integers(1900, 2100) | st.just("1999"),
        "rank": st.integers(1, 100) | st.just(" 42 "),
    },
    optional={"vote_id": st.from_regex(VOTE_ID_PATTERN, fullmatch=True)},
)
any_vote = st.one_of(vote_like, valid_votes, valid_votes)


# ---- the vote model ------------------------------------------------------------------------------


@PROPERTY
@given(data=st.one_of(any_vote, json_values))
@example(data={"name": {"$ne": None}, "album": "a", "year": 2000, "rank": 1})
@example(data={"name": "a", "album": "b", "year": 2000, "rank": True})
def test_the_vote_model_yields_a_valid_vote_or_a_clear_error(data: Any) -> None:
    vote = validate(lambda: Vote.model_validate(data))
    assert (vote is not None) == vote_ok(data), data
    if vote is not None:
        assert_valid(vote)
        assert vote.name == data["name"].strip()  # verbatim, only trimmed


@PROPERTY
@given(votes=st.lists(any_vote, max_size=6))
def test_a_batch_is_valid_whole_or_names_every_invalid_index(votes: list[Any]) -> None:
    batch = validate(lambda: VoteBatch.model_validate({"votes": votes}))
    invalid = {index for index, vote in enumerate(votes) if not vote_ok(vote)}
    assert (batch is not None) == (bool(votes) and not invalid)
    if batch is None and votes:
        with pytest.raises(ValidationError) as info:
            VoteBatch.model_validate({"votes": votes})
        assert {e["loc"][1] for e in info.value.errors() if len(e["loc"]) > 1} == invalid


def test_batch_size_limits() -> None:
    assert len(VoteBatch.model_validate({"votes": [GOOD] * BATCH_MAX_VOTES}).votes) == 1000
    for votes in ([], [GOOD] * (BATCH_MAX_VOTES + 1)):
        with pytest.raises(ValidationError) as info:
            VoteBatch.model_validate({"votes": votes})
        assert info.value.errors()[0]["loc"] == ("votes",)


@pytest.mark.parametrize(
    "text",
    ["x" * 200, "😀" * 200, "e\u0301" * 100, "  " + "x" * 200 + "\t\n ", "\u3000" + "y" * 200],
)
def test_200_characters_after_trimming_are_accepted(text: str) -> None:
    vote = Vote.model_validate(GOOD | {"name": text})
    assert vote.name == text.strip() and len(vote.name) == 200


@pytest.mark.parametrize("text", ["x" * 201, "😀" * 201, "e\u0301" * 100 + "e"])
def test_201_characters_are_rejected(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        Vote.model_validate(GOOD | {"name": text})
    assert "at most 200 characters" in describe_errors(info.value)


# ---- the HTTP decoder: the real routes, in-process -----------------------------------------------


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[VoteRecord] = []

    async def send(self, records: Any) -> None:
        self.sent.extend(records)

    def health(self) -> None:
        return None

    def close(self) -> None:
        pass


# Its metrics are made on first use; without Ray they record nothing.
METRICS = IngestMetrics()


def make_ingress(settings_: Settings | None = None) -> Any:
    """A VoteIngress without its constructor: its parts, with a fake producer and no stores."""
    settings_ = settings_ or Settings()
    cls = ingest.VoteIngress.func_or_class
    ingress = cls.__new__(cls)
    ingress._producer = FakeProducer()
    ingress._metrics = METRICS
    ingress._budget = WriteBudget(
        settings_.write_bytes_in_flight_max,
        settings_.write_latency_target_s,
        settings_.retry_after_s,
    )
    ingress._writes = write_side.WriteSide(
        ingress._producer, METRICS, settings_.write_token, settings_.retry_after_s
    )
    ingress._read = None
    return ingress


def http_client(ingress: Any) -> TestClient:
    """The replica's HTTP app as Serve gets it (`__serve_build_asgi_app__` -> build_http_api)."""
    return TestClient(ingress.__serve_build_asgi_app__(), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def http() -> Iterator[tuple[TestClient, Any]]:
    ingress = make_ingress()
    with http_client(ingress) as client:
        yield client, ingress


# /rust/insert and /grpc/insert: aliases of /insert (the original contest's Ingress paths).
WRITE_ROUTES = ["/votes", "/insert", "/rust/insert", "/grpc/insert", "/votes/batch"]


def check_http_answer(response: Any, path: str, sent: list[VoteRecord], before: int) -> None:
    assert response.status_code in (202, 400, 413, 415, 422), (response.status_code, response.text)
    body = response.json()
    if response.status_code == 422:
        assert body["detail"] and all(
            set(d) == {"loc", "msg", "type"} and d["loc"] and d["msg"] for d in body["detail"]
        )
        assert len(sent) == before, "a rejected request produced records"
    elif response.status_code == 202:
        ids = body["vote_ids"] if path == "/votes/batch" else [body["vote_id"]]
        assert [r.vote_id for r in sent[before:]] == ids
        for record in sent[before:]:
            assert_valid(record)
    else:
        assert isinstance(body["detail"], str) and body["detail"]
        assert len(sent) == before


@PROPERTY
@given(
    path=st.sampled_from(WRITE_ROUTES), data=st.one_of(any_vote, json_values), wrap=st.booleans()
)
def test_http_json_bodies_are_accepted_or_rejected_with_a_reason(
    http: tuple[TestClient, Any], path: str, data: Any, wrap: bool
) -> None:
    client, ingress = http
    if path == "/votes/batch" and wrap:
        data = {"votes": [data, GOOD]}
    sent = ingress._producer.sent
    before = len(sent)
    response = client.post(
        path, content=json.dumps(data), headers={"content-type": "application/json"}
    )
    check_http_answer(response, path, sent, before)
    expected = (
        vote_ok(data)
        if path != "/votes/batch"
        else (
            isinstance(data, dict)
            and set(data) == {"votes"}
            and isinstance(data["votes"], list)
            and 1 <= len(data["votes"]) <= 1000
            and all(vote_ok(v) for v in data["votes"])
        )
    )
    assert (response.status_code == 202) == expected, (data, response.text)


@PROPERTY
@given(
    path=st.sampled_from(WRITE_ROUTES),
    body=st.binary(max_size=300),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/json; charset=latin-1",
            "application/merge-patch+json",
            "text/plain",
            None,
        ]
    ),
)
@example(path="/votes", body=b"1" * 5000, content_type="application/json")
@example(path="/votes", body=b"[" * 100_000, content_type="application/json")
@example(
    path="/votes",
    body=b'{"name": "\\ud800", "album": "a", "year": 1999, "rank": 1}',
    content_type="application/json",
)
@example(path="/votes", body=b'{"\\ud800": 1}', content_type="application/json")
@example(
    path="/votes/batch",
    body=b'{"votes": [' + b",".join([b"{}"] * 5000) + b"]}",
    content_type="application/json",
)
def test_http_arbitrary_bytes_never_cause_a_server_error(
    http: tuple[TestClient, Any], path: str, body: bytes, content_type: str | None
) -> None:
    client, ingress = http
    sent = ingress._producer.sent
    before = len(sent)
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(path, content=body, headers=headers)
    check_http_answer(response, path, sent, before)
    if content_type in (None, "text/plain"):
        assert response.status_code == 415 and "application/json" in response.json()["detail"]


def test_http_422_lists_every_invalid_vote_and_stays_small(http: tuple[TestClient, Any]) -> None:
    client, _ = http
    bad = {"name": "", "album": "", "year": 0, "rank": 0, "vote_id": "?"} | {
        f"extra{i}": i for i in range(20)
    }
    response = client.post("/votes/batch", json={"votes": [bad] * 1000})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert {d["loc"][2] for d in detail} == set(range(1000))  # every invalid index is named
    assert sum(d["type"] == "too_many_errors" for d in detail) == 1000
    # 95,000 unknown keys in one 1 MiB body: a short answer, not 95,000 entries.
    keys = b"{" + b",".join(b'"k%d":0' % i for i in range(95_000)) + b"}"
    assert len(keys) <= MAX_BODY_BYTES
    response = client.post("/votes", content=keys, headers={"content-type": "application/json"})
    assert response.status_code == 422 and len(response.content) < 5000
    assert response.json()["detail"][-1]["msg"].endswith("more errors not listed")


# ---- the Kafka record decoder --------------------------------------------------------------------


def record_dict(**overrides: Any) -> dict[str, Any]:
    return {
        "vote_id": "v-1",
        "name": "Alux Nahual",
        "album": "Alux",
        "year": 1983,
        "rank": 7,
        "received_at": "2024-05-01T12:00:00.000Z",
        "source": "http",
    } | overrides


def check_record(value: bytes | None) -> VoteRecord | None:
    try:
        record = decode_record(value)
    except RecordError as exc:
        assert isinstance(exc.reason, str) and exc.reason
        assert len(exc.reason) <= RECORD_ERROR_MAX_CHARS  # it becomes a Kafka header
        exc.reason.encode("utf-8")  # and must be valid UTF-8
        return None
    assert_valid(record)
    assert record.vote_id and record.received_at.tzinfo is not None
    return record


record_fields = st.sampled_from(
    ["vote_id", "name", "album", "year", "rank", "received_at", "source", "extra"]
)


@PROPERTY
@given(
    value=st.one_of(
        st.binary(max_size=200),
        st.none(),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.tuples(record_fields, st.one_of(json_values, texts, numbers)).map(
            lambda kv: json.dumps(record_dict(**{kv[0]: kv[1]})).encode()
        ),
        st.lists(record_fields, max_size=3).map(
            lambda drop: json.dumps(
                {k: v for k, v in record_dict().items() if k not in drop}
            ).encode()
        ),
    )
)
@example(value=b"1" * 5000)  # past Python's int-digits limit: a bare ValueError from json
@example(value=b'{"year": ' + b"9" * 5000 + b"}")
@example(value=b"[" * 100_000)
@example(value=b"\xff\xfe\x00")
@example(value=b"")
@example(value=json.dumps(record_dict() | {f"k{i}": i for i in range(5000)}).encode())
@example(value=json.dumps({"\ud800" * 3: 1}).encode())
@example(value=json.dumps(record_dict(name="\ud800x")).encode())
@example(value=json.dumps(record_dict(received_at="not a date")).encode())
def test_kafka_record_bytes_decode_to_a_record_or_a_record_error(value: bytes | None) -> None:
    check_record(value)


@PROPERTY
@given(vote=valid_votes, source=st.sampled_from(["http", "grpc"]))
def test_every_accepted_vote_survives_the_kafka_round_trip(
    vote: dict[str, Any], source: str
) -> None:
    record = accept(Vote.model_validate(vote), source, now=datetime(2024, 1, 2, 3, 4, 5, 6000, UTC))
    assert check_record(encode_record(record).value) == record


# ---- the gRPC decoder: the real CastBatch/Cast methods with a fake context -----------------------


class FakeContext:
    def __init__(self, metadata: dict[str, str] | None = None) -> None:
        self.code: grpc.StatusCode | None = None
        self.details: str | None = None
        self._metadata = list((metadata or {}).items())

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return self._metadata

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details


def run_rpc(
    method: str, request: Any, ingress: Any = None, metadata: dict[str, str] | None = None
) -> tuple[Any, FakeContext, Any]:
    ingress = ingress or make_ingress()
    context = FakeContext(metadata)
    reply = asyncio.run(getattr(ingress, method)(request, context))
    return reply, context, ingress


proto_text = (
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30)
    | st.sampled_from([t for t in HOSTILE_TEXT + CONTROL_TEXT if "\ud800" not in t])
    | st.just("y" * 201)
)
int32 = st.integers(-(2**31), 2**31 - 1) | st.integers(1890, 2110) | st.integers(-1, 101)
proto_votes = st.builds(
    pb.Vote,
    name=proto_text,
    album=proto_text,
    year=int32,
    rank=int32,
    vote_id=st.one_of(st.just(""), proto_text, st.from_regex(VOTE_ID_PATTERN, fullmatch=True)),
)


def proto_ok(message: pb.Vote) -> bool:
    return vote_ok(
        {
            "name": message.name,
            "album": message.album,
            "year": message.year,
            "rank": message.rank,
            "vote_id": message.vote_id or None,
        }
    )


def check_grpc(
    reply: Any, context: FakeContext, ingress: Any, expected_ok: bool, count: int
) -> None:
    if expected_ok:
        assert context.code is None, context.details
        assert len(ingress._producer.sent) == count
        for record in ingress._producer.sent:
            assert_valid(record)
    else:
        assert context.code == grpc.StatusCode.INVALID_ARGUMENT
        assert context.details and len(context.details) <= ingest.GRPC_DETAILS_MAX_CHARS
        assert ingress._producer.sent == []


@PROPERTY
@given(message=proto_votes)
def test_grpc_cast_yields_a_vote_or_invalid_argument(message: pb.Vote) -> None:
    reply, context, ingress = run_rpc("Cast", message)
    check_grpc(reply, context, ingress, proto_ok(message), 1)
    if proto_ok(message):
        assert reply.vote_id == ingress._producer.sent[0].vote_id


@PROPERTY
@given(messages=st.lists(proto_votes, max_size=5))
def test_grpc_cast_batch_yields_votes_or_invalid_argument(messages: list[pb.Vote]) -> None:
    reply, context, ingress = run_rpc("CastBatch", pb.VoteBatch(votes=messages))
    expected = bool(messages) and all(proto_ok(m) for m in messages)
    check_grpc(reply, context, ingress, expected, len(messages))


@PROPERTY
@given(raw=st.binary(max_size=200))
def test_grpc_wire_bytes_parse_or_fail_cleanly(raw: bytes) -> None:
    """What Serve's gRPC proxy does with a client's bytes: parse, then our method."""
    try:
        message = pb.VoteBatch.FromString(raw)
    except DecodeError:
        return
    reply, context, ingress = run_rpc("CastBatch", message)
    expected = 0 < len(message.votes) and all(proto_ok(m) for m in message.votes)
    check_grpc(reply, context, ingress, expected, len(message.votes))


def test_grpc_batch_of_1000_invalid_votes_has_short_details() -> None:
    """Described in full, the errors would be ~350 KB of trailer: clients refuse > 16 KiB and
    see RESOURCE_EXHAUSTED instead of INVALID_ARGUMENT."""
    bad = pb.Vote(name="", album="", year=1, rank=0, vote_id="bad id")
    _, context, _ = run_rpc("CastBatch", pb.VoteBatch(votes=[bad] * 1000))
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT
    assert context.details.startswith("votes[0].name")
    assert len(context.details) <= 2000 and context.details.endswith("more errors")


def test_grpc_batch_over_the_limit_is_rejected_before_per_vote_work() -> None:
    """8 million tiny votes (a 100 MB message) are refused on their count alone."""

    class Huge:
        votes = [pb.Vote()] * 2_000_000

    _, context, _ = run_rpc("CastBatch", Huge())
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT
    assert context.details == "votes: at most 1000 votes per batch, got 2000000"


# ---- hostile strings stay verbatim or are rejected with a reason ---------------------------------


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_hostile_looking_text_is_kept_verbatim(text: str) -> None:
    vote = Vote.model_validate(GOOD | {"name": text, "album": text})
    assert vote.name == text.strip() and vote.album == text.strip()
    record = accept(vote, "http", now=datetime(2024, 1, 2, 3, 4, 5, 6000, UTC))
    message = encode_record(record)
    assert decode_record(message.value) == record
    # The Redis script gets the strings inside JSON, the same way the persister sends them.
    assert json.loads(json.dumps([vote.name], ensure_ascii=False)) == [vote.name]


def test_surrounding_line_breaks_are_trimmed_like_any_whitespace() -> None:
    assert Vote.model_validate(GOOD | {"name": "FLUSHALL\r\n"}).name == "FLUSHALL"


@pytest.mark.parametrize("text", CONTROL_TEXT)
def test_control_characters_are_rejected_with_the_code_point(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        Vote.model_validate(GOOD | {"name": text})
    code_point = next(
        f"U+{ord(c):04X}" for c in text.strip() if unicodedata.category(c) in ("Cc", "Cs")
    )
    assert describe_errors(info.value) == (
        f"name: must not contain control characters (found {code_point})"
    )


@pytest.mark.parametrize("value", [{"$ne": None}, {"$gt": ""}, ["$where"], 1, None, True])
def test_non_strings_are_rejected_not_interpreted(value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        Vote.model_validate(GOOD | {"album": value})
    assert describe_errors(info.value) == "album: must be a string"


def test_the_live_page_never_renders_data_as_html() -> None:
    """Names reach the page through textContent: no HTML sink exists in it."""
    page = (ROOT / "serve_app/read/static/index.html").read_text()
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "srcdoc",
        "javascript:",
    ):
        assert sink not in page, f"the live page uses {sink}"
    assert "textContent" in page


# ---- body limits (the middleware alone) ----------------------------------------------------------


async def through_limits(
    chunks: list[bytes], content_length: int | None, content_type: str = "application/json"
) -> tuple[int, bytes, int]:
    """Run BodyLimits over a request sent in `chunks`; the app echoes the size it received.
    Returns the status, the answer's body and how many body messages were left unread."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        size = str(len(message["body"])).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": size})

    headers = [(b"content-type", content_type.encode())]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    pending = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await BodyLimits(app)({"type": "http", "method": "POST", "headers": headers}, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), len(pending)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_exactly_1_mib_passes_and_one_byte_more_is_413(declared: bool) -> None:
    for size, status in ((MAX_BODY_BYTES, 200), (MAX_BODY_BYTES + 1, 413)):
        chunks = [b"x" * 65536] * (size // 65536) + [b"x" * (size % 65536)]
        got, body, _ = asyncio.run(through_limits(chunks, size if declared else None))
        assert got == status
        if status == 200:
            assert body == str(MAX_BODY_BYTES).encode()
        else:
            assert b"exceeds 1048576 bytes" in body


def test_the_grpc_message_limit_is_set_where_ray_starts() -> None:
    """Serve's gRPC servers read their limit from the environment (no grpc_options field in 2.60):
    serve_env carries it to `make run`, the tests and the RayService
    (tests/unit/test_serve_env.py)."""
    assert GRPC_MAX_MESSAGE_BYTES == 4 * 1024 * 1024
    assert SERVE_ENV["RAY_SERVE_GRPC_MAX_MESSAGE_SIZE"] == str(GRPC_MAX_MESSAGE_BYTES)


def test_a_declared_oversize_body_is_refused_before_it_is_read() -> None:
    status, _, _ = asyncio.run(through_limits([], 10 * 2**30))
    assert status == 413


@pytest.mark.parametrize(
    ("content_type", "declared", "status"),
    [("application/json", True, 413), ("application/json", False, 413), ("text/plain", True, 415)],
    ids=["413-content-length", "413-chunked", "415"],
)
def test_a_rejected_body_is_read_to_its_end_before_the_answer(
    content_type: str, declared: bool, status: int
) -> None:
    """Closing a connection with unread data resets it, and the reset can destroy the answer
    (seen through HAProxy: a 413 whose body never arrived). So the rest is read and dropped."""
    chunks = [b"x" * 65536] * 20  # 1.25 MiB
    size = sum(map(len, chunks))
    got, _, unread = asyncio.run(through_limits(chunks, size if declared else None, content_type))
    assert (got, unread) == (status, 0)


def test_draining_a_rejected_body_is_bounded() -> None:
    chunks = [b"x" * 2**20] * 10  # 10 MiB, past DRAIN_MAX_BYTES
    got, _, unread = asyncio.run(through_limits(chunks, None))
    assert got == 413 and 0 < unread < len(chunks)
    assert DRAIN_MAX_BYTES == 4 * MAX_BODY_BYTES


# ---- access: the shared-secret check -------------------------------------------------------------

TOKEN = "tok-" + uuid.uuid4().hex


@pytest.mark.parametrize(
    ("presented", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"BEARER  {TOKEN} ", True),
        (None, False),
        ("", False),
        ("Bearer", False),
        ("Bearer ", False),
        (TOKEN, False),
        (f"Basic {TOKEN}", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN.upper()}", False),
        ("Bearer ñ", False),
    ],
)
def test_the_token_check(presented: str | None, ok: bool) -> None:
    assert write_side.token_ok(Settings(write_token=TOKEN).write_token, presented) is ok
    assert write_side.token_ok(Settings().write_token, presented) is True  # off by default


def test_the_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = write_side.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(write_side.hmac, "compare_digest", spy)
    writes = make_ingress(Settings(write_token=TOKEN))._writes
    assert writes.token_ok(f"Bearer {TOKEN}") and not writes.token_ok("Bearer guess")
    assert calls == [(TOKEN.encode(), TOKEN.encode()), (b"guess", TOKEN.encode())]


def test_http_writes_need_the_token_before_the_body_is_looked_at() -> None:
    ingress = make_ingress(Settings(write_token=TOKEN))
    with http_client(ingress) as client:
        for path, body in (
            ("/votes", GOOD),
            ("/insert", {"x": 1}),
            ("/rust/insert", GOOD),
            ("/grpc/insert", {"x": 1}),
            ("/votes/batch", {"votes": []}),
        ):
            for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
                response = client.post(path, json=body, headers=headers)
                assert response.status_code == 401
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json() == {"detail": "missing or invalid bearer token"}
        response = client.post("/votes", json=GOOD, headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 202
    assert ingress._producer.sent[0].name == GOOD["name"]


def test_grpc_writes_need_the_token() -> None:
    ingress = make_ingress(Settings(write_token=TOKEN))
    vote = pb.Vote(**GOOD)
    for metadata in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        for method, request in (("Cast", vote), ("CastBatch", pb.VoteBatch(votes=[vote]))):
            _, context, _ = run_rpc(method, request, ingress, metadata)
            assert context.code == grpc.StatusCode.UNAUTHENTICATED
            assert context.details == "missing or invalid bearer token"
    assert ingress._producer.sent == []
    reply, context, _ = run_rpc("Cast", vote, ingress, {"authorization": f"Bearer {TOKEN}"})
    assert context.code is None and reply.vote_id


def test_the_token_comes_from_the_environment_and_empty_means_off() -> None:
    secret = uuid.uuid4().hex
    settings_ = load_settings({}, {"VOTES_WRITE_TOKEN": secret})
    assert settings_.write_token is not None and settings_.write_token.get_secret_value() == secret
    assert load_settings({}, {"VOTES_WRITE_TOKEN": ""}).write_token is None
    assert load_settings({}, {}).write_token is None


# ---- credentials: not in settings output, logs, errors or the repository -------------------------


def secret_settings(password: str, **overrides: Any) -> Settings:
    return Settings(
        redis_url=f"redis://:{password}@127.0.0.1:1/0",
        mongo_url=f"mongodb://votes:{password}@127.0.0.1:1/?authSource=admin",
        write_token=password,
        **overrides,
    )


passwords = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+,;=",
    min_size=6,
    max_size=40,
).filter(lambda p: not re.search(r"%(?![0-9A-Fa-f]{2})", p))


@PROPERTY
@given(
    password=passwords,
    user=st.sampled_from(["", "votes", "u.ser"]),
    scheme=st.sampled_from(["redis", "rediss", "mongodb", "mongodb+srv"]),
    host=st.sampled_from(["127.0.0.1:6379", "db.example:27017", "h1:1,h2:2", "[::1]:6379"]),
)
def test_urls_with_passwords_are_redacted(password: str, user: str, scheme: str, host: str) -> None:
    assume(password not in f"{scheme}://{user}:***@{host}/0")
    shown = redact_url(f"{scheme}://{user}:{password}@{host}/0")
    assert password not in shown and f"{user}:***@{host}" in shown


def test_query_string_passwords_are_redacted() -> None:
    password = uuid.uuid4().hex
    shown = redact_url(f"redis://127.0.0.1:6379/0?password={password}&socket_timeout=2")
    assert password not in shown and "password=***" in shown and "socket_timeout=2" in shown


def test_settings_never_print_a_secret() -> None:
    password = "pw-" + uuid.uuid4().hex
    settings_ = secret_settings(password)
    for shown in (settings_.redacted(), repr(settings_), str(settings_), f"{settings_}"):
        assert password not in str(shown)
    assert settings_.write_token.get_secret_value() == password  # still usable


def test_a_wrong_setting_is_reported_without_its_password() -> None:
    password = "pw-" + uuid.uuid4().hex
    for field, value in (
        ("redis_url", f"http://:{password}@redis:6379/0"),
        ("mongo_url", f"postgres://u:{password}@mongo/"),
    ):
        with pytest.raises(SettingsError) as info:
            load_settings({field: value}, {})
        assert field in str(info.value) and password not in str(info.value)


def test_the_ingress_logs_its_settings_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    password = "pw-" + uuid.uuid4().hex
    monkeypatch.setattr(ingest, "VoteProducer", lambda settings_: FakeProducer())
    monkeypatch.setattr(ingest, "connect_read_side", lambda settings_, producer: None)
    wrapper = ingest.VoteIngress.func_or_class  # serve.ingress's subclass, with an async __init__
    ours = next(c for c in wrapper.__mro__[1:] if c.__name__ == "VoteIngress")
    lines: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]  # collects the lines
    # On the logger itself: Serve's loggers may not propagate to the root (caplog's) handler.
    monkeypatch.setattr(ingest.log, "level", logging.DEBUG)
    ingest.log.addHandler(handler)
    try:
        ours.__init__(wrapper.__new__(wrapper), secret_settings(password), None)
    finally:
        ingest.log.removeHandler(handler)
    text = "\n".join(lines)
    assert "VoteIngress ready with settings" in text and ":***@" in text
    assert password not in text


def test_health_and_error_answers_never_carry_a_password() -> None:
    """Stores with passwords in their URLs, both down: the answers say why, without the URL."""
    import httpx
    from fastapi import FastAPI

    from serve_app.read.read_side import connect_read_side
    from serve_app.read.routes import read_routes

    password = "pw-" + uuid.uuid4().hex

    async def answers() -> list[Any]:
        for redis_url in (
            f"redis://:{password}@127.0.0.1:1/0",
            f"redis://:{password}@no-such-host.invalid:6379/0",
        ):
            api = FastAPI()
            api.include_router(read_routes)
            api.state.read_side = connect_read_side(
                secret_settings(password, store_timeout_s=0.5).model_copy(
                    update={"redis_url": redis_url}
                ),
                FakeProducer(),
            )
            transport = httpx.ASGITransport(app=api)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                for path in ("/healthz", "/results", "/votes/recent?limit=5"):
                    yield await client.get(path)

    async def collect() -> list[Any]:
        return [response async for response in answers()]

    responses = asyncio.run(collect())
    for response in responses:
        assert response.status_code == 503
        assert password not in response.text
    health = responses[0].json()
    assert health["kafka"] == "ok" and health["redis"].startswith("unreachable")
    assert health["mongo"].startswith("unreachable")


def test_store_errors_logged_by_the_pool_carry_no_password() -> None:
    """The persister logs `{type}: {exc}` of Redis/MongoDB errors; those texts hold no password."""
    import pymongo
    import redis
    from pymongo.errors import PyMongoError

    password = "pw-" + uuid.uuid4().hex
    client = redis.Redis.from_url(f"redis://:{password}@127.0.0.1:1/0", socket_connect_timeout=0.5)
    with pytest.raises(redis.RedisError) as redis_error:
        client.ping()
    mongo = pymongo.MongoClient(
        f"mongodb://votes:{password}@127.0.0.1:1/", serverSelectionTimeoutMS=500
    )
    with pytest.raises(PyMongoError) as mongo_error:
        mongo.admin.command("ping")
    mongo.close()
    for error in (redis_error.value, mongo_error.value):
        assert password not in f"{type(error).__name__}: {error}"


# What the repository may contain where a credential would go: placeholders only. Test files may
# also use the dummy values listed here (or better, generate theirs at run time, as this file does).
PLACEHOLDER = re.compile(
    r"^(|<[^>]*>|\*+|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|\{[^}]*\}|%\([^)]*\)s)$"
    r"|change-?me|example|dummy|fake|placeholder|redacted|xxx",
    re.IGNORECASE,
)
TEST_DUMMIES = {"hunter2", "pa55word", "s3cret-token"}
ALWAYS_FORBIDDEN = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "JSON web token": re.compile(
        r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"
    ),
}
URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@'\"<>]*:([^\s/@'\"]+)@", re.IGNORECASE)
# KEY=value / key: value in config-like files; key = "literal" in code.
# Blanks only (not newlines) around the separator: a key whose value is on the next lines is a
# mapping, e.g. `password:` in an upstream CRD schema, not a credential. `:=` is make's assignment.
CONFIG_SECRET = re.compile(
    r"(?im)^[ \t]*[\w.-]*(password|passwd|secret|token|api[_-]?key)"
    r"[ \t]*(?::=|[:=])[ \t]*[\"']?([^\s\"'#]*)"
)
CODE_SECRET = re.compile(
    r"(?i)\b\w*(password|passwd|token|api_?key)\s*[:=]\s*[rb]?[\"']([^\"']{8,})[\"']"
)
CONFIG_SUFFIXES = {
    ".env",
    ".example",
    ".yaml",
    ".yml",
    ".toml",
    ".ini",
    ".cfg",
    ".conf",
    ".properties",
    ".json",
    ".template",
}


def repository_files() -> list[Path]:
    """Tracked files and new ones not ignored: what a commit could contain."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    return [ROOT / name for name in listed if name and (ROOT / name).is_file()]


def allowed(value: str, path: Path) -> bool:
    return bool(PLACEHOLDER.search(value)) or ("tests" in path.parts and value in TEST_DUMMIES)


def credential_findings(path: Path, text: str) -> list[str]:
    found = [
        f"{path}: {what}" for what, pattern in ALWAYS_FORBIDDEN.items() if pattern.search(text)
    ]
    for match in URL_PASSWORD.finditer(text):
        if not allowed(match.group(1), path):
            found.append(f"{path}: password in a URL ({match.group(0)[:20]}...)")
    if path.suffix in CONFIG_SUFFIXES or path.name in ("Dockerfile", "Makefile", ".env"):
        for match in CONFIG_SECRET.finditer(text):
            value = match.group(2)
            if value and not allowed(value, path) and not value.startswith(("secretKeyRef", "$(")):
                found.append(f"{path}: {match.group(0).strip()[:40]}...")
    if path.suffix == ".py":
        for match in CODE_SECRET.finditer(text):
            if not allowed(match.group(2), path) and " " not in match.group(2):
                found.append(f"{path}: {match.group(0)[:40]}...")
    return found


def test_no_credential_in_the_repository() -> None:
    findings: list[str] = []
    for path in repository_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary
        findings += credential_findings(path.relative_to(ROOT), text)
    assert findings == [], "credentials in the repository:\n  " + "\n  ".join(findings)


# Assembled at run time, so that this file does not contain what it looks for.
@pytest.mark.parametrize(
    "text",
    [
        "VOTES_REDIS_URL=redis://:" + "Zr8q2vJ1xK" + "@votes-redis:6379/0\n",
        "MONGO_ROOT_PASSWORD=" + "Zr8q2vJ1xK\n",
        "-----BEGIN OPENSSH " + "PRIVATE KEY-----\n",
        "token: " + "ghp_" + "a" * 36 + "\n",
    ],
)
def test_the_credential_scan_finds_real_looking_secrets(text: str) -> None:
    assert credential_findings(Path("deployments/k8s/secrets.env"), text)


def test_the_credential_scan_allows_documented_placeholders() -> None:
    example = ROOT / "deployments/k8s/secrets.env.example"
    assert credential_findings(Path("x.env"), example.read_text()) == []
    assert credential_findings(Path("x.py"), 'url = "redis://:<password>@redis:6379/0"') == []
    assert credential_findings(Path("Makefile"), "RAY_TOKEN := $(STACK)/ray/auth_token\n") == []
    assert credential_findings(Path("Makefile"), "RAY_TOKEN := " + "Zr8q2vJ1xK\n")


def test_the_real_secrets_file_is_ignored_by_git() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "deployments/k8s/secrets.env"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "deployments/k8s/secrets.env is not git-ignored"
