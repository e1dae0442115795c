"""How long a Ray pod may take to stop: Serve's drain and graceful shutdown, then `ray stop`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deployments.manifests.overrides import INGRESS_DEPLOYMENT

# Ray Serve 2.60's defaults (ray/serve/_private/constants.py;
# tests/unit/deployments/k8s/test_availability.py checks them): with direct ingress (HAProxy), an
# ingress replica stays open this long after it is told to stop so load balancers can deregister it,
# and Serve raises the ingress deployment's graceful_shutdown_timeout_s to at least this plus the
# buffer.
SERVE_DIRECT_INGRESS_DRAIN_S = 30
SERVE_DIRECT_INGRESS_SHUTDOWN_BUFFER_S = 5
SERVE_DEFAULT_GRACEFUL_SHUTDOWN_S = 20
# What `ray stop` gets in the preStop hook after the drain, and a margin for the hook to start.
RAY_STOP_GRACE_S = 10
TERMINATION_MARGIN_S = 15


def graceful_shutdown_s(config: Mapping[str, Any]) -> int:
    """The longest a Serve replica of config.yaml may take to stop, as Serve 2.60 computes it: its
    graceful_shutdown_timeout_s (default 20 s), raised for the ingress deployment (VoteIngress) to
    the direct-ingress drain plus buffer, as direct ingress is on (HAProxy)."""
    floor = SERVE_DIRECT_INGRESS_DRAIN_S + SERVE_DIRECT_INGRESS_SHUTDOWN_BUFFER_S
    longest = 0.0
    for app in config["applications"]:
        for deployment in app.get("deployments") or []:
            timeout = float(
                deployment.get("graceful_shutdown_timeout_s", SERVE_DEFAULT_GRACEFUL_SHUTDOWN_S)
            )
            if deployment.get("name") == INGRESS_DEPLOYMENT:
                timeout = max(timeout, floor)
            longest = max(longest, timeout)
    return int(-(-longest // 1))


def drain_budget_s(config: Mapping[str, Any]) -> int:
    """What the worker's preStop hook waits after draining its Ray node: the direct-ingress drain
    plus the longest graceful shutdown of a replica."""
    return SERVE_DIRECT_INGRESS_DRAIN_S + graceful_shutdown_s(config)


def termination_grace_s(config: Mapping[str, Any]) -> int:
    """terminationGracePeriodSeconds of the Ray pods: the drain budget, `ray stop`, a margin."""
    return drain_budget_s(config) + RAY_STOP_GRACE_S + TERMINATION_MARGIN_S
