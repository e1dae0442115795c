"""Deploy a Serve config from Python, as `serve run config.yaml` does."""

from __future__ import annotations

from typing import Any


def deploy_config(config: dict[str, Any]) -> None:
    """Start Serve with the config's options and deploy its applications, without waiting.

    What `serve run config.yaml` does (ray/serve/scripts.py), minus the CLI; ray.init() first.
    """
    from ray.serve._private import api as serve_private_api
    from ray.serve.config import gRPCOptions
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    client = serve_private_api.serve_start(
        http_options=schema.http_options.model_dump(),
        grpc_options=gRPCOptions(**schema.grpc_options.model_dump()),
        proxy_location=schema.proxy_location,
    )
    client.deploy_apps(schema, _blocking=False)
