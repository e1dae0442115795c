"""Kafka down: writes answer 503 / UNAVAILABLE within the bound, never 202; then recover."""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc
import pytest

from devkit.waiting import wait_until
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.grpc_stubs import votes_pb2_grpc as pb_grpc
from tests.conftest import Pipeline

pytestmark = pytest.mark.e2e

# kafka_delivery_timeout_s in config.yaml is 5 s; the answer must come within that plus slack.
BOUND_S = 8.0


def test_kafka_outage_gives_503_then_recovers(pipeline: Pipeline, stack: Any) -> None:
    band = f"Outage {uuid.uuid4().hex[:8]}"
    vote = {"name": band, "album": "x", "year": 2000, "rank": 1}
    channel = grpc.insecure_channel(pipeline.grpc_target)
    stub = pb_grpc.VoteServiceStub(channel)
    stack.stop("kafka")
    try:
        for path, body in (("/votes", vote), ("/votes/batch", {"votes": [vote] * 3})):
            started = time.monotonic()
            response = pipeline.http.post(path, json=body)
            elapsed = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            assert "kafka" in response.json()["detail"].lower()
            assert elapsed < BOUND_S
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            stub.Cast(pb.Vote(name=band, album="x", year=2000, rank=1), timeout=30)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started < BOUND_S
        health = pipeline.http.get("/healthz")
        assert health.status_code == 503 and health.json()["kafka"] != "ok"
        assert health.json()["redis"] == "ok"
    finally:
        stack.start("kafka")

    def accepted() -> bool:
        return (
            pipeline.http.post(
                "/votes", json=vote | {"vote_id": "after-outage-" + band[-8:]}
            ).status_code
            == 202
        )

    wait_until(accepted, 60, "a 202 after Kafka restarted", every_s=1)
    assert stub.Cast(pb.Vote(name=band, album="x", year=2000, rank=1), timeout=30).vote_id
    wait_until(lambda: pipeline.http.get("/healthz").status_code == 200, 30, "healthz 200")
    channel.close()
    # The pool rejoins its group after the restart; leave only once our two votes are counted,
    # so later tests that reconcile totals do not see them arrive late.
    wait_until(lambda: pipeline.results()["by_band"].get(band, 0) >= 2, 60, "both votes counted")
