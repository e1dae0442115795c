"""config.yaml as the cluster runs it: the one place the Kubernetes differences live."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

# What the cluster runs differently from `make run`, per deployment of config.yaml: the one place
# the Kubernetes differences live. `min_replicas`/`max_replicas` go into autoscaling_config, the
# other keys into the deployment itself. max_replicas_per_node 1: Serve asks Ray for an implicit
# resource every node has once, so two ingress replicas never share a node and the Ray autoscaler
# (v2 counts that resource as 1 per new node) starts a worker pod for each extra one.
INGRESS_DEPLOYMENT = "VoteIngress"
KUBERNETES_OVERRIDES: dict[str, dict[str, Any]] = {
    "VoteIngress": {"min_replicas": 2, "max_replicas_per_node": 1},
}
_AUTOSCALING_KEYS = {"min_replicas", "max_replicas", "initial_replicas"}


def cluster_serve_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """config.yaml as the cluster runs it: every key as is, the HTTP proxy listening on all
    addresses, and KUBERNETES_OVERRIDES applied to the deployments they name."""
    serve_config = copy.deepcopy(dict(config))
    http_options = dict(serve_config.get("http_options") or {})
    http_options["host"] = "0.0.0.0"
    serve_config["http_options"] = http_options
    found = set()
    for app in serve_config["applications"]:
        for deployment in app.get("deployments") or []:
            overrides = KUBERNETES_OVERRIDES.get(deployment.get("name"))
            if not overrides:
                continue
            found.add(deployment["name"])
            autoscaling = deployment.get("autoscaling_config")
            for key, value in overrides.items():
                if key in _AUTOSCALING_KEYS and autoscaling is not None:
                    autoscaling[key] = value
                    if autoscaling.get("max_replicas", value) < value:
                        raise ValueError(f"{deployment['name']}: max_replicas below {key} {value}")
                elif key in _AUTOSCALING_KEYS:
                    deployment["num_replicas"] = max(deployment.get("num_replicas", 1), value)
                else:
                    deployment[key] = value
    missing = set(KUBERNETES_OVERRIDES) - found
    if missing:
        raise ValueError(
            f"KUBERNETES_OVERRIDES names deployments config.yaml lacks: {sorted(missing)}"
        )
    return serve_config


# Serve reads these keys of serveConfigV2 only when it starts (Ray's dashboard logs a warning and
# ignores a change; `logging_config` and `applications` are applied in place). Their hash is an
# annotation of the head pod template, so a change to them changes rayClusterConfig, and KubeRay
# rolls out a new Ray cluster that starts with them.
SERVE_START_KEYS = ("http_options", "grpc_options", "proxy_location", "controller_options")
SERVE_START_ANNOTATION = "votes/serve-start-options"


def serve_start_hash(serve_config: Mapping[str, Any]) -> str:
    start = {key: serve_config.get(key) for key in SERVE_START_KEYS}
    return hashlib.sha256(json.dumps(start, sort_keys=True).encode()).hexdigest()[:16]
