"""The HTTP write routes: POST /votes, /votes/batch and the /insert aliases, with their answers.

A vote's path over HTTP: body -> `BodyLimits` (serve_app/ingress/limits.py) -> token check ->
`Vote` (validation) -> `accept()` -> `WriteSide.send()` (awaits Kafka's ack) -> 202. The routes
reach the replica's `WriteSide` through the `write_side` dependency; `build_http_api` puts it in
`app.state`. FastAPI documents the routes from their declarations; `WriteRoute` serves them
without FastAPI's per-request machinery (docs/decisions/0013-ingress-hot-path.md).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from serve_app.domain.votes import Vote, VoteBatch, VoteRecord, accept
from serve_app.http_problem import Problem
from serve_app.ingress.batch_producer import KafkaOutcomeUnknown
from serve_app.ingress.producer import KafkaOverloaded, KafkaUnavailable
from serve_app.ingress.write_side import WriteSide, accept_all
from serve_app.metrics import IngestMetrics


class Accepted(BaseModel):
    vote_id: str
    status: Literal["accepted"] = "accepted"


class BatchAccepted(BaseModel):
    accepted: int
    vote_ids: list[str]


BodyModel = TypeVar("BodyModel", bound=BaseModel)


class WriteRejected(Exception):
    """An error answer of a write route, raised from helpers and rendered by its handler."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        retry_after_s: int | None = None,
        vote_ids: list[str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.retry_after_s = retry_after_s
        self.vote_ids = vote_ids  # a batch whose outcome is unknown: retry with these


# At most this many errors are listed per vote (a vote has 5 fields; the rest are unknown keys).
# Without a cap, a 1 MiB body of 95,000 unknown keys costs ~5 s of CPU and an 8 MB answer.
ERRORS_LISTED_PER_VOTE = 10


def _vote_of(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The vote an error belongs to: ('body', 'votes', 3, 'year') -> ('body', 'votes', 3)."""
    if len(loc) >= 3 and loc[:2] == ("body", "votes") and isinstance(loc[2], int):
        return tuple(loc[:3])
    return tuple(loc[:1])


def capped_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """The standard FastAPI errors minus the echoed input (it can be large or hostile). Every
    invalid vote of a batch is named; past ERRORS_LISTED_PER_VOTE errors of one vote, one
    entry says how many more it had."""
    errors: list[dict[str, Any]] = []
    listed: dict[tuple[Any, ...], int] = {}
    unlisted: dict[tuple[Any, ...], int] = {}
    for error in exc.errors():
        vote = _vote_of(tuple(error["loc"]))
        if listed.get(vote, 0) >= ERRORS_LISTED_PER_VOTE:
            unlisted[vote] = unlisted.get(vote, 0) + 1
            continue
        listed[vote] = listed.get(vote, 0) + 1
        errors.append({"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]})
    errors += [
        {"loc": list(vote), "msg": f"{count} more errors not listed", "type": "too_many_errors"}
        for vote, count in unlisted.items()
    ]
    return errors


def add_write_error_handlers(app: FastAPI, metrics: IngestMetrics) -> None:
    """The 422 (capped, counted) and WriteRejected answers of `app`."""

    async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        metrics.rejected.inc(tags={"path": "http", "reason": "invalid"})
        return JSONResponse(
            status_code=422, content=jsonable_encoder({"detail": capped_errors(exc)})
        )

    async def write_rejected(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, WriteRejected)
        metrics.rejected.inc(tags={"path": "http", "reason": exc.reason})
        headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
        if exc.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        content: dict[str, Any] = {"detail": exc.detail}
        if exc.vote_ids is not None:
            content["vote_ids"] = exc.vote_ids
        return JSONResponse(status_code=exc.status, content=content, headers=headers)

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(WriteRejected, write_rejected)


def write_side(request: Request) -> WriteSide:
    """Dependency: the replica's WriteSide, set by build_http_api."""
    side: WriteSide = request.app.state.write_side  # starlette's State holds Any
    return side


WriteSideDep = Annotated[WriteSide, Depends(write_side)]


async def _write_access(request: Request, authorization: str | None = Header(default=None)) -> None:
    """Dependency of the write routes, checked before the body is parsed: a client without the
    token gets 401 whatever it sent (never a 422 that describes its body)."""
    if not write_side(request).token_ok(authorization):
        raise WriteRejected(401, "unauthorized", "missing or invalid bearer token")


def parse_body(body: bytes, model: type[BodyModel]) -> BodyModel:
    """A JSON body as FastAPI parses and validates a body parameter of type `model`: the same
    answers (422 with FastAPI's errors, located under "body"; 400 when it cannot be parsed)."""
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ]
        ) from None
    except (RecursionError, ValueError):  # nested too deep, a 5000-digit number, not UTF-8/16/32
        raise HTTPException(400, "There was an error parsing the body") from None
    try:
        return model.model_validate(value, from_attributes=True)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None


WriteEndpoint = Callable[[Any, WriteSide], Awaitable[BaseModel]]


class WriteRoute(APIRoute):
    """A write route, `async def endpoint(body: Model, writes: WriteSideDep) -> Answer`.

    FastAPI builds the OpenAPI operation from the declaration as for any route (body model,
    the token header of `_write_access`, answers), but a request runs `_write_access`, the body
    parse and the endpoint directly, without FastAPI's dependency solving, which cost a thread
    hop (write_side is sync) and ~120 µs per vote: docs/decisions/0013-ingress-hot-path.md.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        assert self.body_field is not None and self.status_code is not None
        model = self.body_field.field_info.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        endpoint: WriteEndpoint = self.endpoint
        status_code = self.status_code

        async def handle(request: Request) -> Response:
            await _write_access(request, request.headers.get("authorization"))
            body = parse_body(await request.body(), model)
            answer = await endpoint(body, write_side(request))
            return Response(
                answer.model_dump_json(), status_code=status_code, media_type="application/json"
            )

        return handle


async def _send_http(writes: WriteSide, records: Sequence[VoteRecord]) -> None:
    try:
        await writes.send(records, "http")
    except KafkaOverloaded as exc:
        raise WriteRejected(503, "overloaded", str(exc), writes.retry_after_s) from None
    except KafkaUnavailable as exc:
        raise WriteRejected(503, "kafka_unavailable", str(exc), writes.retry_after_s) from None
    except KafkaOutcomeUnknown as exc:
        raise WriteRejected(
            504,
            "outcome_unknown",
            f"{exc}; the batch may or may not be "
            "counted: retry it with these vote_ids, each counts once",
            vote_ids=[record.vote_id for record in records],
        ) from None


_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": Problem,
        "description": "Body cannot be parsed (nested too deep, a number with thousands of digits)",
    },
    401: {
        "model": Problem,
        "description": "Missing or wrong bearer token",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    413: {"model": Problem, "description": "Body larger than 1 MiB"},
    415: {"model": Problem, "description": "Content-Type missing or not JSON"},
    503: {
        "model": Problem,
        "description": "Kafka unavailable or overloaded; see Retry-After",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
}
_WRITE_ROUTE: dict[str, Any] = {
    "status_code": 202,
    "responses": _WRITE_ERRORS,
    "dependencies": [Depends(_write_access)],
}


class OutcomeUnknown(BaseModel):
    detail: str
    vote_ids: list[str]


_BATCH_ROUTE: dict[str, Any] = _WRITE_ROUTE | {
    "responses": _WRITE_ERRORS
    | {
        504: {
            "model": OutcomeUnknown,
            "description": "Kafka did not answer the batch's commit: it "
            "may or may not be counted; retrying with the vote_ids given counts each vote once",
        },
    }
}
# The aliases of POST /insert: the original contest's traffic generator posts to its old
# Kubernetes Ingress paths, /rust/insert and /grpc/insert.
_COMPATIBILITY_ROUTE: dict[str, Any] = _WRITE_ROUTE | {
    "tags": ["compatibility"],
    "summary": "Alias of POST /insert",
    "description": "Same as POST /insert: the same validation, limits and answers. Kept for the "
    "original contest's traffic generator, which posts to these paths.",
}

write_routes = APIRouter(route_class=WriteRoute)


@write_routes.post("/votes", **_WRITE_ROUTE)
async def cast(vote: Vote, writes: WriteSideDep) -> Accepted:
    """Cast one vote. Answered only once Kafka has acknowledged it."""
    record = accept(vote, "http")
    await _send_http(writes, [record])
    return Accepted(vote_id=record.vote_id)


@write_routes.post("/insert", **_WRITE_ROUTE)
@write_routes.post("/rust/insert", **_COMPATIBILITY_ROUTE)
@write_routes.post("/grpc/insert", **_COMPATIBILITY_ROUTE)
async def insert(vote: Vote, writes: WriteSideDep) -> Accepted:
    """The original traffic generators' route: same as POST /votes."""
    return await cast(vote, writes)


@write_routes.post("/votes/batch", **_BATCH_ROUTE)
async def cast_batch(batch: VoteBatch, writes: WriteSideDep) -> BatchAccepted:
    """Cast up to 1000 votes, all or none: an invalid batch is rejected whole, and a 503 means
    none of it is in Kafka (one Kafka transaction per batch)."""
    records = await accept_all(batch.votes, "http")
    await _send_http(writes, records)
    return BatchAccepted(accepted=len(records), vote_ids=[r.vote_id for r in records])
