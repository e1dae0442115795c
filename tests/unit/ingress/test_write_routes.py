"""The HTTP write routes as `WriteRoute` serves them: FastAPI's answers and documentation, without
FastAPI's per-request machinery (docs/decisions/0013-ingress-hot-path.md)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import anyio.to_thread
import pytest
from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from starlette.testclient import TestClient

from serve_app.domain.votes import Vote, VoteBatch, VoteRecord
from serve_app.ingress.admission import WriteBudget
from serve_app.ingress.http_api import build_http_api
from serve_app.ingress.write_routes import WriteRoute, parse_body, write_routes
from serve_app.ingress.write_side import WriteSide
from serve_app.settings import Settings

GOOD = {"name": "Malacates Trebol Shop", "album": "Pan", "year": 2012, "rank": 1}
TOKEN = secrets.token_hex(8)  # random per run: no credential-looking literal in the repository


class Counted:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def inc(self, value: float = 1, tags: dict[str, str] | None = None) -> None:
        self.calls.append((value, tags))

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.calls.append((value, tags))


class Metrics:
    def __init__(self) -> None:
        self.accepted, self.rejected, self.produce_latency = Counted(), Counted(), Counted()


class Producer:
    def __init__(self) -> None:
        self.sent: list[VoteRecord] = []

    async def send(self, records: Any) -> None:
        self.sent.extend(records)


def client_for(token: str | None = None) -> tuple[TestClient, Producer, Metrics]:
    producer, metrics = Producer(), Metrics()
    writes = WriteSide(producer, metrics, Settings(write_token=token).write_token, 1)  # type: ignore[arg-type]  # fake producer and metrics
    api = build_http_api(budget=WriteBudget(), write_side=writes, read_side=None, metrics=metrics)  # type: ignore[arg-type]  # no read side
    return TestClient(api, raise_server_exceptions=False), producer, metrics


@pytest.fixture
def no_thread_hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a write request ran something in a worker thread")

    monkeypatch.setattr(anyio.to_thread, "run_sync", refuse)
    yield


def test_every_write_route_is_served_by_write_route() -> None:
    assert {route.path for route in write_routes.routes} == {
        "/votes",
        "/insert",
        "/rust/insert",
        "/grpc/insert",
        "/votes/batch",
    }
    assert all(isinstance(route, WriteRoute) for route in write_routes.routes)


@pytest.mark.usefixtures("no_thread_hops")
def test_a_vote_and_a_batch_are_accepted_without_a_thread_hop() -> None:
    client, producer, metrics = client_for()
    with client:
        one = client.post("/votes", json=GOOD | {"vote_id": "v-1"})
        batch = client.post("/votes/batch", json={"votes": [GOOD, GOOD]})
    assert one.status_code == 202 and one.json() == {"vote_id": "v-1", "status": "accepted"}
    assert one.headers["content-type"] == "application/json"
    assert batch.status_code == 202 and batch.json()["accepted"] == 2
    assert batch.json()["vote_ids"] == [r.vote_id for r in producer.sent[1:]]
    assert [tags for _, tags in metrics.accepted.calls] == [{"path": "http"}] * 2


def test_without_the_token_even_an_unparsable_body_gets_401() -> None:
    client, producer, metrics = client_for(TOKEN)
    with client:
        for body in (b"{not json", b"[" * 5000, b""):
            response = client.post(
                "/votes", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        accepted = client.post("/votes", json=GOOD, headers={"authorization": f"Bearer {TOKEN}"})
    assert accepted.status_code == 202 and len(producer.sent) == 1
    assert [tags for _, tags in metrics.rejected.calls] == [
        {"path": "http", "reason": "unauthorized"}
    ] * 3


def errors_of(body: bytes, model: type[Vote | VoteBatch] = Vote) -> list[dict[str, Any]]:
    with pytest.raises(RequestValidationError) as raised:
        parse_body(body, model)
    return [{key: error[key] for key in ("type", "loc", "msg")} for error in raised.value.errors()]


def test_the_body_is_parsed_and_located_as_fastapi_does() -> None:
    """The answers FastAPI 0.165 gives a JSON body parameter (measured before WriteRoute)."""
    assert parse_body(json.dumps(GOOD).encode(), Vote) == Vote(**GOOD)
    assert errors_of(b"") == [{"type": "missing", "loc": ("body",), "msg": "Field required"}]
    assert errors_of(b'{"a":1,}') == [
        {"type": "json_invalid", "loc": ("body", 7), "msg": "JSON decode error"}
    ]
    assert errors_of(json.dumps(GOOD | {"rank": 0}).encode()) == [
        {
            "type": "greater_than_equal",
            "loc": ("body", "rank"),
            "msg": "Input should be greater than or equal to 1",
        }
    ]
    assert errors_of(json.dumps({"votes": [GOOD, GOOD | {"x": 1}]}).encode(), VoteBatch) == [
        {
            "type": "extra_forbidden",
            "loc": ("body", "votes", 1, "x"),
            "msg": "Extra inputs are not permitted",
        }
    ]
    for unparsable in (b"[" * 5000, b"1" * 5000, b"\xff\xfe\x00"):
        with pytest.raises(HTTPException) as raised:
            parse_body(unparsable, Vote)
        assert raised.value.status_code == 400


def test_the_document_still_comes_from_the_declarations() -> None:
    client, _, _ = client_for()
    with client:
        paths = client.get("/openapi.json").json()["paths"]
    for path, model in (("/votes", "Vote"), ("/insert", "Vote"), ("/votes/batch", "VoteBatch")):
        operation = paths[path]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}
        assert [p["name"] for p in operation["parameters"]] == ["authorization"]
        assert {"202", "401", "413", "415", "422", "503"} <= set(operation["responses"])
