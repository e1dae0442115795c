"""Votes cast over every path are counted exactly once in /results and stored once in the log."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest

from devkit.waiting import wait_until
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.grpc_stubs import votes_pb2_grpc as pb_grpc
from tests.conftest import Pipeline

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stub(pipeline: Pipeline) -> Any:
    channel = grpc.insecure_channel(pipeline.grpc_target)
    yield pb_grpc.VoteServiceStub(channel)
    channel.close()


def count_of(pipeline: Pipeline, band: str) -> int:
    return pipeline.results()["by_band"].get(band, 0)


def test_every_path_is_counted_exactly(pipeline: Pipeline, stub: Any, mongo_db: Any) -> None:
    band = f"Viernes Verde {uuid.uuid4().hex[:8]}"
    vote = {"name": band, "album": "Mujeres", "year": 1999, "rank": 4}
    ids = []
    ids.append(pipeline.http.post("/votes", json=vote).json()["vote_id"])
    ids.append(
        pipeline.http.post("/insert", json=vote | {"year": "1999", "rank": "4"}).json()["vote_id"]
    )
    batch = pipeline.http.post("/votes/batch", json={"votes": [vote] * 20}).json()
    ids += batch["vote_ids"]
    ids.append(
        stub.Cast(pb.Vote(name=band, album="Mujeres", year=1999, rank=4), timeout=15).vote_id
    )
    ids += stub.CastBatch(
        pb.VoteBatch(votes=[pb.Vote(name=band, album="Mujeres", year=1999, rank=4)] * 7), timeout=15
    ).vote_ids
    assert len(set(ids)) == 30

    wait_until(lambda: count_of(pipeline, band) == 30, 15, f"30 votes for {band}")
    results = pipeline.results()
    assert results["by_band"][band] == 30
    assert results["total"] >= 30 and results["as_of"].endswith("Z")
    stored = list(mongo_db["votes"].find({"name": band}, {"_id": 1, "source": 1}))
    assert sorted(d["_id"] for d in stored) == sorted(ids)
    assert sum(d["source"] == "grpc" for d in stored) == 8


def test_the_same_vote_id_counts_once(pipeline: Pipeline, stub: Any, mongo_db: Any) -> None:
    band = f"Tijuana Love {uuid.uuid4().hex[:8]}"
    vote_id = f"retry-{uuid.uuid4()}"
    vote = {"name": band, "album": "x", "year": 2005, "rank": 2, "vote_id": vote_id}
    for _ in range(3):
        assert pipeline.http.post("/votes", json=vote).json()["vote_id"] == vote_id
    stub.Cast(pb.Vote(name=band, album="x", year=2005, rank=2, vote_id=vote_id), timeout=15)
    marker = pipeline.http.post("/votes", json=vote | {"vote_id": None}).json()["vote_id"]

    wait_until(
        lambda: mongo_db["votes"].count_documents({"_id": marker}) == 1, 15, "the marker vote"
    )
    wait_until(lambda: count_of(pipeline, band) == 2, 15, "both distinct votes counted")
    assert mongo_db["votes"].count_documents({"_id": vote_id}) == 1


def test_recent_votes_newest_first(pipeline: Pipeline) -> None:
    band = f"Recent {uuid.uuid4().hex[:8]}"
    ids = [
        pipeline.http.post(
            "/votes", json={"name": band, "album": f"a{i}", "year": 2000, "rank": 1}
        ).json()["vote_id"]
        for i in range(3)
    ]

    def newest() -> list[dict[str, Any]]:
        votes = pipeline.http.get("/votes/recent", params={"limit": 3}).json()["votes"]
        return votes if [v["vote_id"] for v in votes] == ids[::-1] else []

    votes = wait_until(newest, 15, "the three votes at the top of /votes/recent")
    assert set(votes[0]) == {"vote_id", "name", "album", "year", "rank", "received_at"}
    assert votes[0]["album"] == "a2" and votes[0]["name"] == band


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc"])
def test_recent_rejects_a_bad_limit(pipeline: Pipeline, limit: str) -> None:
    response = pipeline.http.get("/votes/recent", params={"limit": limit})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "limit"]


def test_grpc_results_match_http(pipeline: Pipeline, stub: Any) -> None:
    band = f"Grpc Reader {uuid.uuid4().hex[:8]}"
    pipeline.http.post(
        "/votes/batch", json={"votes": [{"name": band, "album": "x", "year": 2010, "rank": 9}] * 3}
    )
    wait_until(lambda: count_of(pipeline, band) == 3, 15, "3 votes counted")
    reply = stub.GetResults(pb.ResultsRequest(), timeout=15)
    assert reply.by_band[band] == 3 and reply.total >= 3 and reply.as_of.endswith("Z")


def test_health_and_page(pipeline: Pipeline) -> None:
    assert pipeline.http.get("/healthz").json() == {"kafka": "ok", "redis": "ok", "mongo": "ok"}
    page = pipeline.http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
