"""The optional shared secret of the write paths, end to end (part of the fault and abuse suite).

The session's app (config.yaml as is) runs without a token, as every local run does. This module
deploys a second application of the same code next to it, `votes-auth` at /auth, whose settings
carry a write token, with its own Kafka topic and consumer group (so the session's consumers are
not rebalanced) and the session's stores. gRPC clients pick it with the `application` metadata,
which Serve needs once two applications run. It is deleted when the module ends.

Unit-level checks of the same code (constant-time comparison, the order of the checks, the token
from the environment) are in tests/unit/ingress/test_hostile_input.py.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
import yaml
from confluent_kafka.admin import AdminClient, NewTopic

from devkit.waiting import wait_until
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.grpc_stubs import votes_pb2_grpc as pb_grpc
from tests.conftest import ROOT, Pipeline

pytestmark = pytest.mark.e2e

APP = "votes-auth"
PREFIX = "/auth"
# Made at run time: no credential-looking literal in the repository.
TOKEN = "tok-" + uuid.uuid4().hex
DENIED = {"detail": "missing or invalid bearer token"}
AUTH_APP = [("application", APP)]
OPEN_APP = [("application", "votes")]


def vote(band: str) -> dict[str, Any]:
    return {"name": band, "album": "Acceso", "year": 2001, "rank": 5}


@pytest.fixture(scope="module")
def auth_app(pipeline: Pipeline, app_args: dict[str, Any]) -> Iterator[httpx.Client]:
    from ray import serve

    from serve_app.ingress.deployment import VoteIngress
    from serve_app.pool.deployment import VotePersister
    from serve_app.settings import load_settings

    topic = f"{app_args['kafka_topic']}-auth"
    admin = AdminClient({"bootstrap.servers": "127.0.0.1:9092"})
    for future in admin.create_topics(
        [
            NewTopic(topic, num_partitions=2, replication_factor=1),
            NewTopic(f"{topic}.dlq", num_partitions=1, replication_factor=1),
        ]
    ).values():
        future.result(timeout=30)
    settings = load_settings(
        app_args
        | {
            "kafka_topic": topic,
            "kafka_dlq_topic": f"{topic}.dlq",
            "kafka_consumer_group": f"{app_args['kafka_consumer_group']}-auth",
            "write_token": TOKEN,
        },
        environ={},
    )
    # As serve_app.app.build_app binds it, with small replicas: the machine has 2 CPUs.
    app = VoteIngress.options(num_replicas=1, ray_actor_options={"num_cpus": 0.1}).bind(
        settings,
        VotePersister.options(num_replicas=1, ray_actor_options={"num_cpus": 0.1}).bind(settings),
    )
    serve.run(app, name=APP, route_prefix=PREFIX)
    client = httpx.Client(base_url=f"{pipeline.http.base_url}{PREFIX}", timeout=30)
    try:
        wait_until(lambda: client.get("/healthz").status_code == 200, 60, f"{APP} to be healthy")
        yield client
    finally:
        client.close()
        serve.delete(APP)
        for future in admin.delete_topics([topic, f"{topic}.dlq"]).values():
            with contextlib.suppress(Exception):  # best-effort clean-up
                future.result(timeout=30)


@pytest.fixture(scope="module")
def stub(pipeline: Pipeline, auth_app: httpx.Client) -> Any:
    with grpc.insecure_channel(pipeline.grpc_target) as channel:
        yield pb_grpc.VoteServiceStub(channel)


def assert_denied(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == DENIED  # says nothing about the token or the request


WRITES = [("/votes", vote("x")), ("/insert", vote("x")), ("/votes/batch", {"votes": [vote("x")]})]


@pytest.mark.parametrize(("path", "body"), WRITES, ids=[w[0] for w in WRITES])
def test_a_write_without_the_token_is_401(auth_app: httpx.Client, path: str, body: Any) -> None:
    assert_denied(auth_app.post(path, json=body))
    for header in (
        "Bearer",
        "Bearer x",
        f"Basic {TOKEN}",
        TOKEN,
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}0",
        f"Bearer {TOKEN.upper()}",
    ):
        assert_denied(auth_app.post(path, json=body, headers={"authorization": header}))


def test_without_the_token_even_an_invalid_body_is_401(auth_app: httpx.Client) -> None:
    assert_denied(auth_app.post("/votes", json={"name": {"$ne": None}}))
    assert_denied(auth_app.post("/votes/batch", json={"votes": []}))


def test_with_the_token_a_vote_is_accepted_and_counted(
    auth_app: httpx.Client, pipeline: Pipeline
) -> None:
    band = f"Con Llave {uuid.uuid4().hex[:8]}"
    headers = {"authorization": f"Bearer {TOKEN}"}
    assert auth_app.post("/votes", json=vote(band), headers=headers).status_code == 202
    response = auth_app.post(
        "/insert", json=vote(band) | {"year": "2001"}, headers={"authorization": f"bearer {TOKEN}"}
    )
    assert response.status_code == 202
    response = auth_app.post("/votes/batch", json={"votes": [vote(band)] * 3}, headers=headers)
    assert response.status_code == 202 and response.json()["accepted"] == 3
    # Read routes need no token, on both applications (they share the stores).
    for client in (auth_app, pipeline.http):
        wait_until(
            lambda c=client: c.get("/results").json()["by_band"].get(band) == 5,
            30,
            f"5 votes for {band}",
        )


def test_read_routes_are_public(auth_app: httpx.Client) -> None:
    for path in ("/results", "/votes/recent", "/healthz", "/openapi.json", "/"):
        assert auth_app.get(path).status_code == 200, path


def test_the_local_app_needs_no_token(pipeline: Pipeline, stub: Any) -> None:
    """Off by default: config.yaml sets no token, and its app takes writes without one."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert "write_token" not in config["applications"][0]["args"]
    assert (
        pipeline.http.post("/votes", json=vote(f"Abierto {uuid.uuid4().hex[:6]}")).status_code
        == 202
    )
    reply = stub.Cast(pb.Vote(**vote("Abierto grpc")), metadata=OPEN_APP, timeout=15)
    assert reply.vote_id


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", TOKEN])
def test_a_grpc_write_without_the_token_is_unauthenticated(
    stub: Any, authorization: str | None
) -> None:
    metadata = AUTH_APP + ([("authorization", authorization)] if authorization else [])
    for call, request in (
        (stub.Cast, pb.Vote(**vote("x"))),
        (stub.CastBatch, pb.VoteBatch(votes=[pb.Vote(**vote("x"))])),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call(request, metadata=metadata, timeout=15)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert info.value.details() == DENIED["detail"]


def test_a_grpc_write_with_the_token_is_accepted(stub: Any) -> None:
    metadata = AUTH_APP + [("authorization", f"Bearer {TOKEN}")]
    assert stub.Cast(pb.Vote(**vote("Con Llave grpc")), metadata=metadata, timeout=15).vote_id
    reply = stub.CastBatch(
        pb.VoteBatch(votes=[pb.Vote(**vote("Con Llave grpc"))] * 2), metadata=metadata, timeout=15
    )
    assert reply.accepted == 2


def test_grpc_results_are_public(stub: Any) -> None:
    assert stub.GetResults(pb.ResultsRequest(), metadata=AUTH_APP, timeout=15).as_of
