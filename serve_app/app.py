"""The composition root: `serve run config.yaml` calls `build_app(args)` with config.yaml's args.

Reading it top to bottom shows the whole application: settings, then the deployments it binds.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from serve_app.ingress.deployment import VoteIngress
from serve_app.pool.deployment import VotePersister
from serve_app.settings import load_settings


def build_app(args: dict[str, Any]) -> Application:
    settings = load_settings(args)
    # The persister pool is not called by the ingress; binding it here makes it part of the
    # application, so Serve starts, health-checks and scales it with everything else.
    return VoteIngress.bind(settings, VotePersister.bind(settings))
