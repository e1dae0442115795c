"""The ingress deployment: HTTP routes and gRPC methods in one Serve replica, sharing one producer.

A vote's path: HTTP body or gRPC message -> `Vote` (validation) -> `accept()` (vote_id, received_at)
-> `VoteProducer.send()` (awaits Kafka's ack) -> 202 / reply. Reads go to `serve_app.read.read_side`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

import grpc
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from ray import serve
from ray.serve.grpc_util import RayServegRPCContext
from ray.serve.handle import DeploymentHandle

from serve_app import __version__
from serve_app.domain.votes import (
    BATCH_MAX_VOTES,
    Source,
    Vote,
    VoteBatch,
    VoteRecord,
    accept,
    describe_errors,
)
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.ingress.admission import WriteBudget
from serve_app.ingress.limits import BodyLimits
from serve_app.ingress.producer import (
    YIELD_EVERY_RECORDS,
    KafkaOverloaded,
    KafkaUnavailable,
    VoteProducer,
)
from serve_app.metrics import IngestMetrics
from serve_app.read.read_side import (
    RECENT_LIMIT_DEFAULT,
    RECENT_LIMIT_MAX,
    ReadSide,
    results_to_proto,
)
from serve_app.settings import Settings

# Under "ray.serve": Serve writes these to the replica logs shown in the Ray dashboard.
log = logging.getLogger("ray.serve").getChild(__name__)


class Accepted(BaseModel):
    vote_id: str
    status: Literal["accepted"] = "accepted"


class BatchAccepted(BaseModel):
    accepted: int
    vote_ids: list[str]


class Problem(BaseModel):
    detail: str


# Bodies of the read routes. They return JSONResponse directly (no validation on the way out);
# the models are here so that the OpenAPI document says what the routes send.
class ResultsBody(BaseModel):
    total: int
    by_band: dict[str, int]
    by_album: dict[str, int]
    by_year: dict[str, int]
    by_rank: dict[str, int]
    as_of: str


class RecentVote(BaseModel):
    vote_id: str
    name: str
    album: str
    year: int
    rank: int
    received_at: str


class RecentVotes(BaseModel):
    votes: list[RecentVote]


class Health(BaseModel):
    kafka: str
    redis: str
    mongo: str


# gRPC details travel in a trailer; clients refuse trailers beyond 8-16 KiB (a batch of 1000
# invalid votes described in full is ~350 KB), so the details name the first errors and a count.
GRPC_DETAILS_MAX_CHARS = 2000


api = FastAPI(
    title="votes",
    version=__version__,
    description="Cast votes for Guatemalan bands and watch the results live.",
)
# One set of metric objects per replica process, created on first use inside the replica.
metrics = IngestMetrics()
# Write work this replica takes on at once, HTTP and gRPC together; sized from the settings in
# VoteIngress.__init__ (one per replica process, like the middleware that uses it).
write_budget = WriteBudget()
_REJECT_REASONS = {413: "too_large", 415: "not_json", 400: "bad_request", 503: "overloaded"}
api.add_middleware(
    BodyLimits,
    on_reject=lambda status: metrics.rejected.inc(
        tags={"path": "http", "reason": _REJECT_REASONS.get(status, str(status))}),
    budget=write_budget,
)


# At most this many errors are listed per vote (a vote has 5 fields; the rest are unknown keys).
# Without a cap, a 1 MiB body of 95,000 unknown keys costs ~5 s of CPU and an 8 MB answer.
ERRORS_LISTED_PER_VOTE = 10


def _vote_of(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The vote an error belongs to: ('body', 'votes', 3, 'year') -> ('body', 'votes', 3)."""
    if len(loc) >= 3 and loc[:2] == ("body", "votes") and isinstance(loc[2], int):
        return tuple(loc[:3])
    return tuple(loc[:1])


@api.exception_handler(RequestValidationError)
async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    # The standard FastAPI shape, minus the echoed input: it can be large or hostile. Every
    # invalid vote of a batch is named; past ERRORS_LISTED_PER_VOTE errors of one vote, one
    # entry says how many more it had.
    metrics.rejected.inc(tags={"path": "http", "reason": "invalid"})
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
    return JSONResponse(status_code=422, content=jsonable_encoder({"detail": errors}))


_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Body cannot be parsed (nested too deep, a number "
          "with thousands of digits)"},
    401: {"model": Problem, "description": "Missing or wrong bearer token",
          "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
    413: {"model": Problem, "description": "Body larger than 1 MiB"},
    415: {"model": Problem, "description": "Content-Type missing or not JSON"},
    503: {"model": Problem, "description": "Kafka unavailable or overloaded; see Retry-After",
          "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
}


class WriteRejected(Exception):
    """An error answer of a write route, raised from helpers and rendered by the handler below."""

    def __init__(self, status: int, reason: str, detail: str,
                 retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.retry_after_s = retry_after_s


@api.exception_handler(WriteRejected)
async def _write_rejected(_request: Request, exc: WriteRejected) -> JSONResponse:
    metrics.rejected.inc(tags={"path": "http", "reason": exc.reason})
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
    if exc.status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(status_code=exc.status, content={"detail": exc.detail}, headers=headers)

# Module-level helpers sit above the deployment class: Serve serialises the class when it is
# decorated, and names defined below it would be missing in the replica.
def _vote_fields(message: pb.Vote) -> dict[str, Any]:
    """A proto Vote as the dict the model validates. proto3 has no 'absent': '' means no vote_id."""
    return {
        "name": message.name,
        "album": message.album,
        "year": message.year,
        "rank": message.rank,
        "vote_id": message.vote_id or None,
    }


async def _write_access(authorization: str | None = Header(default=None)) -> None:
    """Dependency of the write routes. FastAPI runs it before it validates the body, so a
    client without the token gets 401 whatever it sent (never a 422 that describes its body)."""
    serve.get_replica_context().servable_object._check_http_token(authorization)


_WRITE_ACCESS = [Depends(_write_access)]

# The aliases of POST /insert: the original contest's traffic generator posts to its old
# Kubernetes Ingress paths, /rust/insert and /grpc/insert.
_COMPATIBILITY_ROUTE: dict[str, Any] = {
    "tags": ["compatibility"],
    "summary": "Alias of POST /insert",
    "description": "Same as POST /insert: the same validation, limits and answers. Kept for the "
                   "original contest's traffic generator, which posts to these paths.",
}


def _grpc_error(grpc_context: RayServegRPCContext, code: grpc.StatusCode, details: str,
                reply: Any) -> Any:
    grpc_context.set_code(code)
    grpc_context.set_details(details)
    return reply


async def _accept_all(votes: Sequence[Vote], source: Source) -> list[VoteRecord]:
    """accept() every vote of a batch, handing the event loop back now and then (see
    YIELD_EVERY_RECORDS): ~15 ms per 1000 votes, more on a busy machine."""
    records: list[VoteRecord] = []
    for start in range(0, len(votes), YIELD_EVERY_RECORDS):
        if start:
            await asyncio.sleep(0)
        records.extend(accept(vote, source) for vote in votes[start:start + YIELD_EVERY_RECORDS])
    return records


@serve.deployment(name="VoteIngress")
@serve.ingress(api)
class VoteIngress:
    def __init__(self, settings: Settings, persister: DeploymentHandle) -> None:
        self._settings = settings
        write_budget.configure(settings.write_bytes_in_flight_max, settings.write_latency_target_s,
                               settings.retry_after_s)
        # The pool works on its own (it pulls from Kafka); the handle keeps it in the app.
        self._persister = persister
        self._producer = VoteProducer(settings)
        self._read = ReadSide(settings, self._producer)
        log.info("VoteIngress ready with settings %s", settings.redacted())

    # ---- HTTP: writes ------------------------------------------------------------------------

    @api.post("/votes", status_code=202, responses=_WRITE_ERRORS, dependencies=_WRITE_ACCESS)
    async def cast(self, vote: Vote) -> Accepted:
        """Cast one vote. Answered only once Kafka has acknowledged it."""
        record = accept(vote, "http")
        await self._send_http([record])
        return Accepted(vote_id=record.vote_id)

    @api.post("/insert", status_code=202, responses=_WRITE_ERRORS, dependencies=_WRITE_ACCESS)
    @api.post("/rust/insert", status_code=202, responses=_WRITE_ERRORS,
              dependencies=_WRITE_ACCESS, **_COMPATIBILITY_ROUTE)
    @api.post("/grpc/insert", status_code=202, responses=_WRITE_ERRORS,
              dependencies=_WRITE_ACCESS, **_COMPATIBILITY_ROUTE)
    async def insert(self, vote: Vote) -> Accepted:
        """The original traffic generators' route: same as POST /votes."""
        return await self.cast(vote)

    @api.post("/votes/batch", status_code=202, responses=_WRITE_ERRORS,
              dependencies=_WRITE_ACCESS)
    async def cast_batch(self, batch: VoteBatch) -> BatchAccepted:
        """Cast up to 1000 votes; an invalid batch is rejected whole."""
        records = await _accept_all(batch.votes, "http")
        await self._send_http(records)
        return BatchAccepted(accepted=len(records), vote_ids=[r.vote_id for r in records])

    # ---- HTTP: reads -------------------------------------------------------------------------

    @api.get("/results", response_model=ResultsBody,
             responses={503: {"model": Problem, "description": "The counter store is down"}})
    async def results(self) -> JSONResponse:
        return await self._read.results_response()

    @api.get("/votes/recent", response_model=RecentVotes,
             responses={503: {"model": Problem, "description": "The counter store is down"}})
    async def recent(
        self, limit: int = Query(RECENT_LIMIT_DEFAULT, ge=1, le=RECENT_LIMIT_MAX)
    ) -> JSONResponse:
        return await self._read.recent_response(limit)

    @api.get("/healthz", response_model=Health,
             responses={503: {"model": Health, "description": "A part is down; it says why"}})
    async def healthz(self) -> JSONResponse:
        return await self._read.health_response()

    @api.get("/", include_in_schema=False)
    async def page(self) -> Any:
        return self._read.page_response()

    @api.get("/events", include_in_schema=False)
    async def events(self) -> Any:
        """The live page's Server-Sent Events: a results snapshot about once a second."""
        return self._read.events_response()

    # ---- gRPC (method names are the RPC names of votes.v1.VoteService) -----------------------

    async def Cast(self, request: pb.Vote, grpc_context: RayServegRPCContext) -> pb.CastReply:
        arrived = write_budget.clock()
        if not self._check_grpc_token(grpc_context):
            return pb.CastReply()
        try:
            vote = Vote.model_validate(_vote_fields(request))
        except ValidationError as exc:
            metrics.rejected.inc(tags={"path": "grpc", "reason": "invalid"})
            return _grpc_error(grpc_context, grpc.StatusCode.INVALID_ARGUMENT,
                               describe_errors(exc, max_chars=GRPC_DETAILS_MAX_CHARS),
                               pb.CastReply())
        record = accept(vote, "grpc")
        if not await self._send_grpc([record], grpc_context, request.ByteSize(), arrived):
            return pb.CastReply()
        return pb.CastReply(vote_id=record.vote_id)

    async def CastBatch(
        self, request: pb.VoteBatch, grpc_context: RayServegRPCContext
    ) -> pb.BatchReply:
        arrived = write_budget.clock()
        if not self._check_grpc_token(grpc_context):
            return pb.BatchReply()
        if len(request.votes) > BATCH_MAX_VOTES:
            # Before any per-vote work: a 100 MB message holds millions of tiny votes.
            metrics.rejected.inc(tags={"path": "grpc", "reason": "invalid"})
            return _grpc_error(
                grpc_context, grpc.StatusCode.INVALID_ARGUMENT,
                f"votes: at most {BATCH_MAX_VOTES} votes per batch, got {len(request.votes)}",
                pb.BatchReply())
        try:
            batch = VoteBatch.model_validate({"votes": [_vote_fields(v) for v in request.votes]})
        except ValidationError as exc:
            metrics.rejected.inc(tags={"path": "grpc", "reason": "invalid"})
            return _grpc_error(grpc_context, grpc.StatusCode.INVALID_ARGUMENT,
                               describe_errors(exc, max_chars=GRPC_DETAILS_MAX_CHARS),
                               pb.BatchReply())
        records = await _accept_all(batch.votes, "grpc")
        if not await self._send_grpc(records, grpc_context, request.ByteSize(), arrived):
            return pb.BatchReply()
        return pb.BatchReply(accepted=len(records), vote_ids=[r.vote_id for r in records])

    async def GetResults(
        self, request: pb.ResultsRequest, grpc_context: RayServegRPCContext
    ) -> pb.Results:
        results = await self._read.results()
        if results is None:
            return _grpc_error(grpc_context, grpc.StatusCode.UNAVAILABLE,
                               "the counter store is unavailable", pb.Results())
        return results_to_proto(results)

    # ---- shared ------------------------------------------------------------------------------

    async def _send(self, records: Sequence[VoteRecord], path: str) -> None:
        """Produce and await the acks; on success record the votes and the latency."""
        started = time.perf_counter()
        await self._producer.send(records)
        metrics.produce_latency.observe(time.perf_counter() - started, tags={"path": path})
        metrics.accepted.inc(len(records), tags={"path": path})

    async def _send_http(self, records: Sequence[VoteRecord]) -> None:
        retry_after = self._settings.retry_after_s
        try:
            await self._send(records, "http")
        except KafkaOverloaded as exc:
            raise WriteRejected(503, "overloaded", str(exc), retry_after) from None
        except KafkaUnavailable as exc:
            raise WriteRejected(503, "kafka_unavailable", str(exc), retry_after) from None

    async def _send_grpc(
        self, records: Sequence[VoteRecord], grpc_context: RayServegRPCContext, size: int,
        arrived: float,
    ) -> bool:
        # HTTP bodies are admitted by the middleware; a gRPC message only here, once parsed.
        admission = write_budget.admit(size, arrived)
        if admission is None:
            metrics.rejected.inc(tags={"path": "grpc", "reason": "overloaded"})
            _grpc_error(grpc_context, grpc.StatusCode.RESOURCE_EXHAUSTED, write_budget.describe(), None)
            return False
        try:
            await self._send(records, "grpc")
        except KafkaOverloaded as exc:
            metrics.rejected.inc(tags={"path": "grpc", "reason": "overloaded"})
            _grpc_error(grpc_context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), None)
            return False
        except KafkaUnavailable as exc:
            metrics.rejected.inc(tags={"path": "grpc", "reason": "kafka_unavailable"})
            _grpc_error(grpc_context, grpc.StatusCode.UNAVAILABLE, str(exc), None)
            return False
        finally:
            write_budget.release(admission)
        return True

    def _token_ok(self, presented: str | None) -> bool:
        expected = self._settings.write_token
        if expected is None:
            return True
        scheme, _, token = (presented or "").partition(" ")
        # compare_digest: the time taken does not tell how much of a guess was right.
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), expected.get_secret_value().encode()
        )

    def _check_http_token(self, authorization: str | None) -> None:
        if not self._token_ok(authorization):
            raise WriteRejected(401, "unauthorized", "missing or invalid bearer token")

    def _check_grpc_token(self, grpc_context: RayServegRPCContext) -> bool:
        metadata = dict(grpc_context.invocation_metadata())
        if self._token_ok(metadata.get("authorization")):
            return True
        metrics.rejected.inc(tags={"path": "grpc", "reason": "unauthorized"})
        _grpc_error(grpc_context, grpc.StatusCode.UNAUTHENTICATED,
                    "missing or invalid bearer token", None)
        return False

    def __del__(self) -> None:
        producer = getattr(self, "_producer", None)
        if producer is not None:
            producer.close()

