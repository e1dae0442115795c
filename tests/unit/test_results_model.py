"""One results model (serve_app.domain.counting.Results) for GET /results, its OpenAPI schema,
the live page and the GetResults reply."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI

from serve_app.domain.counting import Results
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.read.read_side import ReadSide, results_to_proto
from serve_app.read.routes import read_routes

RESULTS = Results(
    total=3,
    by_band={"La Tona": 3},
    by_album={"Pan": 3},
    by_year={"2012": 3},
    by_rank={"1": 2, "2": 1},
    as_of=datetime(2026, 1, 2, 3, 4, 5, 678901, UTC),
)
BODY = {
    "total": 3,
    "by_band": {"La Tona": 3},
    "by_album": {"Pan": 3},
    "by_year": {"2012": 3},
    "by_rank": {"1": 2, "2": 1},
    "as_of": "2026-01-02T03:04:05.678Z",
}


class FakePipeline:
    """The replies of the counter reads of serve_app.stores.redis_counts.read_results_pipeline."""

    def __init__(self) -> None:
        self.replies: list[Any] = []

    def get(self, key: str) -> None:
        self.replies.append(b"3")

    def hgetall(self, key: str) -> None:
        self.replies.append(
            {
                "votes:by_band": {b"La Tona": b"3"},
                "votes:by_album": {b"Pan": b"3"},
                "votes:by_year": {b"2012": b"3"},
                "votes:by_rank": {b"1": b"2", b"2": b"1"},
            }[key]
        )

    async def execute(self) -> list[Any]:
        return self.replies


class FakeRedis:
    def pipeline(self, transaction: bool) -> FakePipeline:
        return FakePipeline()


def test_the_model_serialises_as_the_contract_says() -> None:
    assert RESULTS.model_dump(mode="json") == BODY


def test_the_grpc_reply_has_the_same_fields_and_values() -> None:
    assert set(pb.Results.DESCRIPTOR.fields_by_name) == set(Results.model_fields)
    reply = results_to_proto(RESULTS)
    assert reply.total == 3 and dict(reply.by_band) == BODY["by_band"]
    assert dict(reply.by_rank) == BODY["by_rank"] and reply.as_of == BODY["as_of"]


def test_the_route_answers_and_documents_the_model() -> None:
    api = FastAPI()
    api.include_router(read_routes)
    api.state.read_side = ReadSide(FakeRedis(), None, None, None)  # type: ignore[arg-type]  # a fake Redis; no Kafka, no Mongo

    async def get(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    response = asyncio.run(get("/results"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == set(BODY) and body["by_rank"] == BODY["by_rank"] and body["total"] == 3
    assert body["as_of"].endswith("Z") and len(body["as_of"]) == len(BODY["as_of"])
    document = asyncio.run(get("/openapi.json")).json()
    schema = document["paths"]["/results"]["get"]["responses"]["200"]["content"]
    assert schema["application/json"]["schema"] == {"$ref": "#/components/schemas/Results"}
    as_of = document["components"]["schemas"]["Results"]["properties"]["as_of"]
    assert as_of["type"] == "string"
