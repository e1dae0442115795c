"""What a user would write without Ray: uvicorn + Starlette, validate with `Vote`, produce with
acks.

    .venv/bin/python -m uvicorn bench.peers.plain_http:app --port 38001 --no-access-log

Same work per vote as the Serve ingress (the same model, `accept()`, `encode_record()` and the
same `VoteProducer`: acks=all, idempotent, reply only after the delivery report), minus Ray.
Settings come from VOTES_* environment variables (VOTES_KAFKA_TOPIC, ...).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from serve_app.domain.votes import Vote, VoteBatch, accept, describe_errors
from serve_app.ingress.producer import KafkaOverloaded, KafkaUnavailable, VoteProducer
from serve_app.settings import load_settings

settings = load_settings()
producer: VoteProducer | None = None


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    global producer
    producer = VoteProducer(settings)
    yield
    producer.close()


async def _body(request: Request) -> object:
    return json.loads(await request.body())


async def _produce(records: list) -> Response | None:
    assert producer is not None
    try:
        await producer.send(records)
    except (KafkaOverloaded, KafkaUnavailable) as exc:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})
    return None


async def cast(request: Request) -> Response:
    try:
        vote = Vote.model_validate(await _body(request))
    except (ValueError, ValidationError) as exc:
        detail = describe_errors(exc) if isinstance(exc, ValidationError) else "not JSON"
        return JSONResponse({"detail": detail}, status_code=422)
    record = accept(vote, "http")
    if (failed := await _produce([record])) is not None:
        return failed
    return JSONResponse({"vote_id": record.vote_id, "status": "accepted"}, status_code=202)


async def cast_batch(request: Request) -> Response:
    try:
        batch = VoteBatch.model_validate(await _body(request))
    except (ValueError, ValidationError) as exc:
        detail = describe_errors(exc) if isinstance(exc, ValidationError) else "not JSON"
        return JSONResponse({"detail": detail}, status_code=422)
    records = [accept(vote, "http") for vote in batch.votes]
    if (failed := await _produce(records)) is not None:
        return failed
    return JSONResponse(
        {"accepted": len(records), "vote_ids": [r.vote_id for r in records]}, status_code=202
    )


async def healthz(_request: Request) -> Response:
    return JSONResponse({"ok": True})


app = Starlette(
    routes=[
        Route("/votes", cast, methods=["POST"]),
        Route("/insert", cast, methods=["POST"]),
        Route("/votes/batch", cast_batch, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ],
    lifespan=lifespan,
)
