"""The ingress deployment: HTTP routes and gRPC methods in one Serve replica, sharing one producer.

A vote's path: HTTP body (serve_app/ingress/write_routes.py) or gRPC message (here) -> `Vote`
(validation) -> `accept()` (vote_id, received_at) -> `WriteSide.send()` -> `VoteProducer.send()`
(awaits Kafka's ack) -> 202 / reply. Reads go to `serve_app.read` (routes.py, read_side.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, TypeVar

import grpc
from fastapi import FastAPI
from pydantic import ValidationError
from ray import serve
from ray.serve.grpc_util import RayServegRPCContext
from ray.serve.handle import DeploymentHandle

from serve_app.domain.votes import (
    BATCH_MAX_VOTES,
    Vote,
    VoteBatch,
    VoteRecord,
    accept,
    describe_errors,
)
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.ingress.admission import WriteBudget
from serve_app.ingress.batch_producer import KafkaOutcomeUnknown, TransactionalBatches
from serve_app.ingress.http_api import build_http_api
from serve_app.ingress.producer import KafkaOverloaded, KafkaUnavailable, VoteProducer
from serve_app.ingress.write_side import WriteSide, accept_all
from serve_app.metrics import IngestMetrics
from serve_app.read.read_side import connect_read_side, read_results, results_to_proto
from serve_app.settings import Settings
from serve_app.tcp_nodelay import enable as enable_tcp_nodelay

# Under "ray.serve": Serve writes these to the replica logs shown in the Ray dashboard.
log = logging.getLogger("ray.serve").getChild(__name__)

# Before the replica's HTTP server accepts anything: ~40 ms less per HTTP request (decision 0018).
enable_tcp_nodelay()

# gRPC details travel in a trailer; clients refuse trailers beyond 8-16 KiB (a batch of 1000
# invalid votes described in full is ~350 KB), so the details name the first errors and a count.
GRPC_DETAILS_MAX_CHARS = 2000


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


Reply = TypeVar("Reply")


def _grpc_error(
    grpc_context: RayServegRPCContext, code: grpc.StatusCode, details: str, reply: Reply
) -> Reply:
    grpc_context.set_code(code)
    grpc_context.set_details(details)
    return reply


@serve.deployment(name="VoteIngress")
@serve.ingress()  # the app comes from __serve_build_asgi_app__, on the replica
class VoteIngress:
    # The persister's handle is never called (the ingress may not import the pool): Any.
    def __init__(self, settings: Settings, persister: DeploymentHandle[Any]) -> None:
        # Write work this replica takes on at once, HTTP and gRPC together.
        self._budget = WriteBudget(
            settings.write_bytes_in_flight_max,
            settings.write_latency_target_s,
            settings.retry_after_s,
        )
        # The pool works on its own (it pulls from Kafka); the handle keeps it in the app.
        self._persister = persister
        self._metrics = IngestMetrics()
        self._producer = VoteProducer(settings)
        # Batches all or nothing, one Kafka transaction each:
        # docs/decisions/0023-transactional-batches.md.
        self._batches = (
            TransactionalBatches(settings, settings.kafka_batch_producers)
            if settings.kafka_batch_transactions
            else None
        )
        self._writes = WriteSide(
            self._producer,
            self._metrics,
            settings.write_token,
            settings.retry_after_s,
            self._batches,
        )
        self._read = connect_read_side(settings, self._producer)
        log.info("VoteIngress ready with settings %s", settings.redacted())

    def __serve_build_asgi_app__(self) -> FastAPI:
        """The HTTP routes (Serve calls this on the replica, after __init__)."""
        return build_http_api(
            budget=self._budget,
            write_side=self._writes,
            read_side=self._read,
            metrics=self._metrics,
        )

    # ---- gRPC (method names are the RPC names of votes.v1.VoteService) -----------------------

    async def Cast(self, request: pb.Vote, grpc_context: RayServegRPCContext) -> pb.CastReply:
        arrived = self._budget.clock()
        if not self._check_grpc_token(grpc_context):
            return pb.CastReply()
        try:
            vote = Vote.model_validate(_vote_fields(request))
        except ValidationError as exc:
            self._metrics.rejected.inc(tags={"path": "grpc", "reason": "invalid"})
            return _grpc_error(
                grpc_context,
                grpc.StatusCode.INVALID_ARGUMENT,
                describe_errors(exc, max_chars=GRPC_DETAILS_MAX_CHARS),
                pb.CastReply(),
            )
        record = accept(vote, "grpc")
        if not await self._send_grpc([record], grpc_context, request.ByteSize(), arrived):
            return pb.CastReply()
        return pb.CastReply(vote_id=record.vote_id)

    async def CastBatch(
        self, request: pb.VoteBatch, grpc_context: RayServegRPCContext
    ) -> pb.BatchReply:
        arrived = self._budget.clock()
        if not self._check_grpc_token(grpc_context):
            return pb.BatchReply()
        if len(request.votes) > BATCH_MAX_VOTES:
            # Before any per-vote work: a 100 MB message holds millions of tiny votes.
            self._metrics.rejected.inc(tags={"path": "grpc", "reason": "invalid"})
            return _grpc_error(
                grpc_context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"votes: at most {BATCH_MAX_VOTES} votes per batch, got {len(request.votes)}",
                pb.BatchReply(),
            )
        try:
            batch = VoteBatch.model_validate({"votes": [_vote_fields(v) for v in request.votes]})
        except ValidationError as exc:
            self._metrics.rejected.inc(tags={"path": "grpc", "reason": "invalid"})
            return _grpc_error(
                grpc_context,
                grpc.StatusCode.INVALID_ARGUMENT,
                describe_errors(exc, max_chars=GRPC_DETAILS_MAX_CHARS),
                pb.BatchReply(),
            )
        records = await accept_all(batch.votes, "grpc")
        if not await self._send_grpc(records, grpc_context, request.ByteSize(), arrived):
            return pb.BatchReply()
        return pb.BatchReply(accepted=len(records), vote_ids=[r.vote_id for r in records])

    async def GetResults(
        self, request: pb.ResultsRequest, grpc_context: RayServegRPCContext
    ) -> pb.Results:
        results = await read_results(self._read.redis)
        if results is None:
            return _grpc_error(
                grpc_context,
                grpc.StatusCode.UNAVAILABLE,
                "the counter store is unavailable",
                pb.Results(),
            )
        return results_to_proto(results)

    # ---- shared ------------------------------------------------------------------------------

    async def _send_grpc(
        self,
        records: Sequence[VoteRecord],
        grpc_context: RayServegRPCContext,
        size: int,
        arrived: float,
    ) -> bool:
        # HTTP bodies are admitted by the middleware; a gRPC message only here, once parsed.
        admission = self._budget.admit(size, arrived)
        if admission is None:
            self._metrics.rejected.inc(tags={"path": "grpc", "reason": "overloaded"})
            _grpc_error(
                grpc_context, grpc.StatusCode.RESOURCE_EXHAUSTED, self._budget.describe(), None
            )
            return False
        try:
            await self._writes.send(records, "grpc")
        except KafkaOverloaded as exc:
            self._metrics.rejected.inc(tags={"path": "grpc", "reason": "overloaded"})
            _grpc_error(grpc_context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), None)
            return False
        except KafkaUnavailable as exc:
            self._metrics.rejected.inc(tags={"path": "grpc", "reason": "kafka_unavailable"})
            _grpc_error(grpc_context, grpc.StatusCode.UNAVAILABLE, str(exc), None)
            return False
        except KafkaOutcomeUnknown as exc:
            # The reply cannot carry 1000 vote_ids (trailers): a client retries safely with its own.
            self._metrics.rejected.inc(tags={"path": "grpc", "reason": "outcome_unknown"})
            _grpc_error(
                grpc_context,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"{exc}; the batch may or may not be counted",
                None,
            )
            return False
        finally:
            self._budget.release(admission)
        return True

    def _check_grpc_token(self, grpc_context: RayServegRPCContext) -> bool:
        metadata = dict(grpc_context.invocation_metadata())
        if self._writes.token_ok(metadata.get("authorization")):
            return True
        self._metrics.rejected.inc(tags={"path": "grpc", "reason": "unauthorized"})
        _grpc_error(
            grpc_context, grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token", None
        )
        return False

    def __del__(self) -> None:
        producer = getattr(self, "_producer", None)
        if producer is not None:
            producer.close()
        batches = getattr(self, "_batches", None)
        if batches is not None:
            batches.close()
