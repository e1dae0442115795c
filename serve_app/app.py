"""The composition root: `serve run config.yaml` calls `build_app(args)` with config.yaml's args.

Reading it top to bottom shows the whole application: settings, then the deployments it binds.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application
from ray.serve.deployment import Deployment

from serve_app.ingress.deployment import VoteIngress
from serve_app.pool.deployment import VotePersister
from serve_app.settings import load_settings


def build_app(args: dict[str, Any]) -> Application:
    settings = load_settings(args)
    # The persister pool is not called by the ingress; binding it here makes it part of the
    # application, so Serve starts, health-checks and scales it with everything else.
    return _deployment(VoteIngress).bind(settings, _deployment(VotePersister).bind(settings))


def _deployment(decorated: object) -> Deployment:
    """What @serve.deployment made of a class: mypy keeps a decorated class's own type."""
    assert isinstance(decorated, Deployment)
    return decorated
