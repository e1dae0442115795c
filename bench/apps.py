"""Serve builders the benchmark deploys from a copy of config.yaml (ServeInstance(import_path=...)).

    bench.apps:build_ingest_only   VoteIngress exactly as `make run` builds it, with the pool idle:
                                   what ingestion alone costs, comparable with the plain peers.
    bench.apps:build_noop          the framework's floor (`serve_noop_*`): a deployment named
                                   VoteIngress with the same HTTP routes and gRPC methods that does
                                   no validation and no Kafka, next to the same idle pool.

Each takes config.yaml's application args, as serve_app.app:build_app does. Both keep the names
VoteIngress and VotePersister, so config.yaml's options for those deployments (replicas,
autoscaling, max_ongoing_requests, CPUs) apply unchanged and the CPU meter labels them as ours.
The pool's LagPolicy sees no lag samples from the idle stand-in and keeps its size (1).
"""

from __future__ import annotations

import itertools
from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.ingress.deployment import VoteIngress
from serve_app.settings import load_settings


@serve.deployment(name="VotePersister", ray_actor_options={"num_cpus": 0})
class IdlePool:
    """Stands where the persister pool stands and consumes nothing: the votes stay in Kafka."""

    def ping(self) -> str:
        return "idle"


def build_ingest_only(args: dict[str, Any]) -> Application:
    settings = load_settings(args)
    return VoteIngress.bind(settings, IdlePool.bind())


def _noop_http_app() -> Any:
    """The floor's HTTP app: plain Starlette with the three routes, built on the replica.

    Starlette, not FastAPI: the floor is Serve's own cost (its HTTP path into an ASGI app on the
    replica, the same `@serve.ingress` + `__serve_build_asgi_app__` mechanism VoteIngress uses);
    FastAPI's routing and models are our choice, so they count as our work, not the floor's.
    The plain peer is Starlette too: floor + peer = Serve + the same work without Ray.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    ids = itertools.count()

    async def cast(request: Request) -> Response:
        await request.body()  # read, as any server must; never parsed
        return JSONResponse({"vote_id": f"noop-{next(ids)}", "status": "accepted"}, status_code=202)

    async def cast_batch(request: Request) -> Response:
        body = await request.body()
        # Not validated: the count of "name" keys is what the load generator's batches carry.
        count = body.count(b'"name"')
        return JSONResponse({"accepted": count, "vote_ids": []}, status_code=202)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/votes", cast, methods=["POST"]),
            Route("/votes/batch", cast_batch, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


@serve.deployment(name="VoteIngress")
@serve.ingress()  # the app comes from __serve_build_asgi_app__, on the replica (as VoteIngress)
class NoopIngress:
    """No validation, no Kafka: what Serve costs per request with the routes and methods of ours."""

    def __init__(self, persister: DeploymentHandle) -> None:
        self._persister = persister  # keeps the idle pool in the application, as VoteIngress does
        self._ids = itertools.count()

    def __serve_build_asgi_app__(self) -> Any:
        return _noop_http_app()

    # gRPC: the methods of votes.v1.VoteService, with replies of the right types.

    async def Cast(self, request: pb.Vote, grpc_context: Any) -> pb.CastReply:
        return pb.CastReply(vote_id=request.vote_id or f"noop-{next(self._ids)}")

    async def CastBatch(self, request: pb.VoteBatch, grpc_context: Any) -> pb.BatchReply:
        return pb.BatchReply(accepted=len(request.votes))

    async def GetResults(self, request: pb.ResultsRequest, grpc_context: Any) -> pb.Results:
        return pb.Results()


def build_noop(args: dict[str, Any]) -> Application:
    """The floor; `args` (config.yaml's application args) are accepted and not used."""
    del args
    return NoopIngress.bind(IdlePool.bind())
