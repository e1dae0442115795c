"""What the cluster says of the RayService, Kafka, the stores and the Gateway (`status`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from deployments.deploy.cluster import ClusterAPI, live_object
from deployments.deploy.objects import describe, of_kind


@dataclass
class RayServiceState:
    exists: bool
    app_statuses: dict[str, str] = field(default_factory=dict)
    app_messages: dict[str, str] = field(default_factory=dict)
    deployments: dict[str, dict[str, str]] = field(default_factory=dict)
    cluster: str = ""
    cluster_state: str = ""
    workers: str = ""
    ready: str = ""  # condition Ready: "True (reason)"
    upgrading: bool = False
    up_to_date: bool = True  # status.observedGeneration caught up with metadata.generation

    def running(self, apps: Iterable[str]) -> bool:
        return (
            self.exists
            and self.up_to_date
            and not self.upgrading
            and all(self.app_statuses.get(app) == "RUNNING" for app in apps)
        )

    def line(self, apps: Iterable[str]) -> str:
        if not self.exists:
            return "RayService not found"
        parts = []
        if self.cluster:
            state = self.cluster_state or "starting"
            parts.append(
                f"cluster {self.cluster} {state}" + (f" ({self.workers})" if self.workers else "")
            )
        else:
            parts.append("no Ray cluster yet")
        for app in apps:
            status = self.app_statuses.get(app, "not deployed yet")
            deployments = self.deployments.get(app) or {}
            detail = ", ".join(f"{name} {state}" for name, state in deployments.items())
            parts.append(f"app {app} {status}" + (f" ({detail})" if detail else ""))
        if self.upgrading:
            parts.append("upgrade in progress")
        if not self.up_to_date:
            parts.append("operator has not seen the latest spec yet")
        return "; ".join(parts)


def rayservice_state(obj: dict | None) -> RayServiceState:
    """Read a RayService (ray.io/v1, KubeRay 1.6/1.7 status layout)."""
    if obj is None:
        return RayServiceState(exists=False)
    status = obj.get("status") or {}
    active = status.get("activeServiceStatus") or {}
    state = RayServiceState(exists=True)
    for app, app_status in (active.get("applicationStatuses") or {}).items():
        state.app_statuses[app] = app_status.get("status", "")
        if app_status.get("message"):
            state.app_messages[app] = app_status["message"]
        state.deployments[app] = {
            name: (dep or {}).get("status", "")
            for name, dep in (app_status.get("serveDeploymentStatuses") or {}).items()
        }
    state.cluster = active.get("rayClusterName", "")
    cluster_status = active.get("rayClusterStatus") or {}
    state.cluster_state = cluster_status.get("state", "")
    if "readyWorkerReplicas" in cluster_status or "desiredWorkerReplicas" in cluster_status:
        state.workers = (
            f"workers {cluster_status.get('readyWorkerReplicas', 0)}"
            f"/{cluster_status.get('desiredWorkerReplicas', 0)} ready"
        )
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            state.ready = f"{condition.get('status')} ({condition.get('reason', '')})"
        if condition.get("type") == "UpgradeInProgress" and condition.get("status") == "True":
            state.upgrading = True
    if (status.get("pendingServiceStatus") or {}).get("rayClusterName"):
        state.upgrading = True
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        state.up_to_date = False
    return state


def condition_ready(obj: dict | None) -> tuple[bool, str]:
    """Strimzi-style `Ready` condition: (ready, short text)."""
    if obj is None:
        return False, "not found"
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return True, "Ready"
            return (
                False,
                f"not ready: {condition.get('reason', '')} {condition.get('message', '')}".strip(),
            )
    return False, "not ready yet (no Ready condition)"


def app_names(rayservice_doc: dict[str, Any]) -> list[str]:
    serve_config = yaml.safe_load(rayservice_doc["spec"]["serveConfigV2"]) or {}
    return [app["name"] for app in serve_config.get("applications") or []]


def print_status(
    cluster: ClusterAPI, docs: Sequence[dict[str, Any]], out: Callable[[str], None] = print
) -> bool:
    """One block per part; True when everything is up."""
    healthy = True
    for doc in of_kind(docs, "RayService"):
        apps = app_names(doc)
        state = rayservice_state(live_object(cluster, doc))
        if not state.exists:
            out(f"{describe(doc)}: not found (run apply)")
            healthy = False
            continue
        out(f"{describe(doc)}: Ready {state.ready or 'unknown'}")
        out(f"  Ray cluster: {state.cluster or '-'} {state.cluster_state} {state.workers}".rstrip())
        for app in apps:
            out(f"  application {app}: {state.app_statuses.get(app, 'not deployed')}")
            if state.app_messages.get(app):
                out(f"    {state.app_messages[app]}")
            for name, dep_state in (state.deployments.get(app) or {}).items():
                out(f"    deployment {name}: {dep_state}")
        if state.upgrading:
            out("  upgrade in progress (a new Ray cluster is being prepared)")
        healthy &= state.running(apps)
    for kind in ("Kafka", "KafkaNodePool", "KafkaTopic"):
        for doc in of_kind(docs, kind):
            obj = live_object(cluster, doc)
            if kind == "KafkaNodePool":
                replicas = ((obj or {}).get("status") or {}).get("replicas")
                text = (
                    "not found"
                    if obj is None
                    else f"{replicas if replicas is not None else '?'} node(s)"
                )
                ok = obj is not None
            else:
                ok, text = condition_ready(obj)
            out(f"{describe(doc)}: {text}")
            healthy &= ok
    for kind in ("StatefulSet", "Deployment"):
        for doc in of_kind(docs, kind):
            obj = live_object(cluster, doc)
            if obj is None:
                out(f"{describe(doc)}: not found")
                healthy = False
                continue
            want = (obj.get("spec") or {}).get("replicas", 1)
            ready = (obj.get("status") or {}).get("readyReplicas", 0) or 0
            out(f"{describe(doc)}: {ready}/{want} ready")
            healthy &= ready >= want
    for doc in of_kind(docs, "Gateway"):
        out(f"{describe(doc)}: {gateway_line(live_object(cluster, doc))}")
    return healthy


def gateway_line(obj: dict | None) -> str:
    """A Gateway's state: its Programmed condition and addresses."""
    if obj is None:
        return "not found"
    status = obj.get("status") or {}
    address = ", ".join(a.get("value", "?") for a in status.get("addresses") or [])
    programmed = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Programmed"), None
    )
    if programmed is None:
        state = "not programmed yet"
    elif programmed.get("status") == "True":
        state = "programmed"
    else:
        state = f"not programmed: {programmed.get('reason', '')}"
    return f"{state}; {address or 'no address yet'}"
