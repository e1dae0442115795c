"""Serve builders the benchmark deploys from a copy of config.yaml (ServeInstance(import_path=...)).

    bench.apps:build_ingest_only   VoteIngress exactly as `make run` builds it, with the pool idle:
                                   what ingestion alone costs, comparable with the plain peers.

Each takes config.yaml's application args, as serve_app.app:build_app does.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

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
