"""What a user would write without Ray: a grpc.aio server, validate with `Vote`, produce with acks.

    .venv/bin/python -m bench.peers.plain_grpc --port 38002

The gRPC twin of `plain_http`: votes.v1.VoteService Cast and CastBatch, the same model and the
same `VoteProducer`. Settings come from VOTES_* environment variables.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import grpc
from pydantic import ValidationError

from serve_app.domain.votes import Vote, VoteBatch, accept, describe_errors
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.grpc_stubs import votes_pb2_grpc as pb_grpc
from serve_app.ingress.producer import KafkaOverloaded, KafkaUnavailable, VoteProducer
from serve_app.settings import load_settings


def _fields(message: pb.Vote) -> dict[str, Any]:
    return {
        "name": message.name,
        "album": message.album,
        "year": message.year,
        "rank": message.rank,
        "vote_id": message.vote_id or None,
    }


class VoteService:  # the methods of votes.v1.VoteService, by name
    def __init__(self, producer: VoteProducer) -> None:
        self._producer = producer

    async def _send(self, records: list, context: grpc.aio.ServicerContext) -> bool:
        try:
            await self._producer.send(records)
        except KafkaOverloaded as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except KafkaUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return True

    async def Cast(self, request: pb.Vote, context: grpc.aio.ServicerContext) -> pb.CastReply:
        try:
            vote = Vote.model_validate(_fields(request))
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, describe_errors(exc))
        record = accept(vote, "grpc")
        await self._send([record], context)
        return pb.CastReply(vote_id=record.vote_id)

    async def CastBatch(
        self, request: pb.VoteBatch, context: grpc.aio.ServicerContext
    ) -> pb.BatchReply:
        try:
            batch = VoteBatch.model_validate({"votes": [_fields(v) for v in request.votes]})
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, describe_errors(exc))
        records = [accept(vote, "grpc") for vote in batch.votes]
        await self._send(records, context)
        return pb.BatchReply(accepted=len(records), vote_ids=[r.vote_id for r in records])

    async def GetResults(
        self, request: pb.ResultsRequest, context: grpc.aio.ServicerContext
    ) -> pb.Results:
        # The peer measures the write path only; every method of the service must exist.
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the plain peer serves no reads")
        return pb.Results()


async def serve(port: int) -> None:
    producer = VoteProducer(load_settings())
    server = grpc.aio.server()
    pb_grpc.add_VoteServiceServicer_to_server(VoteService(producer), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        await server.wait_for_termination()
    finally:
        producer.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))
