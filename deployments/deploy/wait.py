"""Waiting for the RayService's applications to be RUNNING, with a progress line per change."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from deployments.deploy.cluster import ClusterAPI, live_object
from deployments.deploy.objects import DEFAULT_NAMESPACE, describe, of_kind
from deployments.deploy.status import app_names, condition_ready, rayservice_state

POLL_S = 5.0
HEARTBEAT_S = 30.0


def wait_until_running(
    cluster: ClusterAPI,
    docs: Sequence[dict[str, Any]],
    timeout_s: float,
    out: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Poll the RayService until its applications are RUNNING; a progress line on every change."""
    rayservice_doc = of_kind(docs, "RayService")[0]
    apps = app_names(rayservice_doc)
    kafka_docs = of_kind(docs, "Kafka")
    start = clock()
    last_line, last_print = "", -HEARTBEAT_S
    out(f"waiting up to {timeout_s:.0f}s for {describe(rayservice_doc)}: {', '.join(apps)} RUNNING")
    while True:
        state = rayservice_state(live_object(cluster, rayservice_doc))
        line = state.line(apps)
        if kafka_docs:
            line += "; Kafka " + condition_ready(live_object(cluster, kafka_docs[0]))[1]
        elapsed = clock() - start
        if line != last_line or elapsed - last_print >= HEARTBEAT_S:
            out(f"  [{elapsed:5.0f}s] {line}")
            last_line, last_print = line, elapsed
        if state.running(apps):
            out(f"RayService {rayservice_doc['metadata']['name']}: {', '.join(apps)} RUNNING")
            return True
        failed = [app for app in apps if state.app_statuses.get(app) == "DEPLOY_FAILED"]
        if failed and state.up_to_date:
            for app in failed:
                out(f"application {app} DEPLOY_FAILED: {state.app_messages.get(app, '')}")
            out(_troubleshooting(rayservice_doc))
            return False
        if elapsed >= timeout_s:
            out(f"timed out after {timeout_s:.0f}s; last state: {line}")
            out(_troubleshooting(rayservice_doc))
            return False
        sleep(min(POLL_S, max(0.0, timeout_s - elapsed)))


def _troubleshooting(rayservice_doc: dict[str, Any]) -> str:
    name = rayservice_doc["metadata"]["name"]
    namespace = rayservice_doc["metadata"].get("namespace", DEFAULT_NAMESPACE)
    return (
        "  look closer with:\n"
        f"    python -m deployments.deploy status --namespace {namespace}\n"
        f"    kubectl describe rayservice {name} -n {namespace}\n"
        f"    kubectl get pods -n {namespace}\n"
        f"    kubectl logs -n {namespace} -l ray.io/node-type=head -c ray-head --tail 100"
    )
