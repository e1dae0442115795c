"""Deploy votes on Kubernetes: KubeRay RayService + Strimzi Kafka + Redis + MongoDB + Grafana.

    python -m deployments.deploy apply  --namespace votes --image REF [--gateway-class NAME]
                                        [--timeout 900]
    python -m deployments.deploy status --namespace votes
    python -m deployments.deploy delete --namespace votes [--keep-data]
    common options: --kubeconfig PATH, --context NAME, --dry-run [--verbose],
                    --repo PATH (the votes checkout; default: the current directory),
                    --kustomization DIR (default: <repo>/deployments/k8s; the lab's real
                    node uses deployments/k8s-lab/overlay)

The objects are exactly those of `kubectl apply -k deployments/k8s` (rendered by
deployments.manifests), moved to --namespace. `apply` server-side-applies them in dependency order
(namespace, config, Kafka, stores, monitoring, RayService, Gateway) with the official kubernetes
client's DynamicClient, which handles the custom resources too, then waits until the RayService
reports the application RUNNING. `delete` goes in reverse order. `--dry-run` lists (and with
--verbose prints) the objects without touching a cluster or even reading a kubeconfig.

`apply` (dry run included) refuses the placeholder image ghcr.io/votes-contest/votes: nothing is
published there. Build and push your own, then name it with --image or kustomize's `images:`.

Exit status: 0 done/healthy, 1 not ready in time or unhealthy, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from deployments import manifests
from deployments.repo import Repo, RepoNotFound, add_repo_option

FIELD_MANAGER = "votes-deploy"
DEFAULT_NAMESPACE = "votes"
DEFAULT_TIMEOUT_S = 900.0
POLL_S = 5.0
HEARTBEAT_S = 30.0
PLACEHOLDER = "change-me"

OPERATOR_HINTS = {
    "ray.io": (
        "install the KubeRay operator (1.6.2 or later):\n"
        "      helm repo add kuberay https://ray-project.github.io/kuberay-helm/\n"
        "      helm install kuberay-operator kuberay/kuberay-operator --version 1.7.0 "
        "--namespace kuberay-system --create-namespace"
    ),
    "gateway.networking.k8s.io": (
        "install a Gateway API implementation, e.g. Envoy Gateway (its chart installs the CRDs):\n"
        "      helm install eg oci://docker.io/envoyproxy/gateway-helm --version <release> "
        "--namespace envoy-gateway-system --create-namespace\n"
        "    and create its GatewayClass (docs/kubernetes.md, step 1)"
    ),
    "kafka.strimzi.io": (
        "install the Strimzi operator (0.49 or later serves kafka.strimzi.io/v1; 0.51 tested):\n"
        "      helm install strimzi-cluster-operator "
        "oci://quay.io/strimzi-helm/strimzi-kafka-operator --version 0.51.0 "
        "--namespace strimzi --create-namespace --set watchAnyNamespace=true"
    ),
}

NO_CLUSTER = """no Kubernetes cluster configured ({reason}).
  Point the deploy CLI at a cluster, one of:
    - pass --kubeconfig PATH (and --context NAME to pick a context),
    - set KUBECONFIG=PATH, or put the config in ~/.kube/config,
    - for a local test cluster: `kind create cluster` or `minikube start` (both write ~/.kube/config).
  Check it with `kubectl cluster-info`. --dry-run needs no cluster."""

# apply order: what each object needs must exist first; delete runs it backwards.
_KIND_RANK = {
    "Namespace": 0,
    "ServiceAccount": 1,
    "Role": 1,
    "RoleBinding": 1,
    "ConfigMap": 1,
    "Secret": 1,
    "KafkaNodePool": 2,
    "Kafka": 3,
    "KafkaTopic": 4,
    "RayService": 20,
    "Gateway": 30,
    "HTTPRoute": 31,
    "GRPCRoute": 31,
}
_COMPONENT_RANK = {"redis": 10, "mongo": 11, "prometheus": 12, "grafana": 13}


class DeployError(Exception):
    """A problem the user can fix; the message says how."""


PLACEHOLDER_IMAGE = """the image {image} is a placeholder: nothing is published there.
  Build the image (Dockerfile at the repository root) and push it where the cluster can pull it:
      docker build -t REGISTRY/votes:TAG . && docker push REGISTRY/votes:TAG    (or podman)
  then name it, one of:
    - pass --image REGISTRY/votes:TAG to this command,
    - or add to deployments/k8s/kustomization.yaml (what `kubectl apply -k` uses too):
        images:
          - name: {repository}
            newName: REGISTRY/votes
            newTag: TAG
  README.md, "Deploy on Kubernetes", step 3."""


def images_of(docs: Iterable[dict[str, Any]]) -> list[str]:
    """Every container image of the objects (pod templates at any depth, initContainers too)."""
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    found.extend(
                        c["image"] for c in value if isinstance(c, dict) and c.get("image")
                    )
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(list(docs))
    return found


def refuse_placeholder_image(docs: Sequence[dict[str, Any]]) -> None:
    """The RayService must run an image someone built: not ghcr.io/votes-contest/votes."""
    for image in images_of(docs):
        if manifests._image_name(image) == manifests.IMAGE_REPOSITORY:
            raise DeployError(
                PLACEHOLDER_IMAGE.format(image=image, repository=manifests.IMAGE_REPOSITORY)
            )


def set_gateway_class(docs: Sequence[dict[str, Any]], name: str) -> None:
    """--gateway-class: the GatewayClass of our Gateway (the implementation that runs it)."""
    for doc in docs:
        if doc["kind"] == "Gateway":
            doc["spec"]["gatewayClassName"] = name


def apply_rank(doc: dict[str, Any]) -> int:
    if doc["kind"] in _KIND_RANK:
        return _KIND_RANK[doc["kind"]]
    component = ((doc.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/component")
    return _COMPONENT_RANK.get(component, 15)


def ordered(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(docs, key=apply_rank)  # stable: file order within a rank


def describe(doc: dict[str, Any]) -> str:
    metadata = doc.get("metadata") or {}
    where = f" ({metadata['namespace']})" if metadata.get("namespace") else ""
    return f"{doc['kind']}/{metadata.get('name')}{where}"


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


# --------------------------------------------------------------------------------------------
# The cluster, behind a small interface (the tests use a fake)
# --------------------------------------------------------------------------------------------


class ClusterAPI(Protocol):
    def has_kind(self, api_version: str, kind: str) -> bool: ...
    def apply(self, doc: dict[str, Any]) -> None: ...
    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict | None: ...
    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool: ...


class Cluster:
    """The kubernetes client's DynamicClient: one code path for built-in kinds and CRs."""

    def __init__(self, dynamic: Any) -> None:
        from kubernetes.dynamic import exceptions

        self.dynamic = dynamic
        self.errors = exceptions

    def _resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def has_kind(self, api_version: str, kind: str) -> bool:
        try:
            self._resource(api_version, kind)
        except self.errors.ResourceNotFoundError:
            return False
        return True

    def apply(self, doc: dict[str, Any]) -> None:
        resource = self._resource(doc["apiVersion"], doc["kind"])
        try:
            self.dynamic.server_side_apply(
                resource,
                body=doc,
                namespace=doc["metadata"].get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
        except self.errors.DynamicApiError as exc:
            raise DeployError(f"applying {describe(doc)} failed: {exc.summary()}") from None

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict | None:
        resource = self._resource(api_version, kind)
        try:
            return resource.get(name=name, namespace=namespace).to_dict()
        except self.errors.NotFoundError:
            return None

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        resource = self._resource(api_version, kind)
        try:
            resource.delete(name=name, namespace=namespace)
        except self.errors.NotFoundError:
            return False
        return True


def connect(kubeconfig: str | None, context: str | None) -> Cluster:
    """A Cluster from --kubeconfig, KUBECONFIG, ~/.kube/config or, inside a pod, the pod's account."""
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.dynamic import DynamicClient
    from urllib3.exceptions import HTTPError

    try:
        try:
            api = k8s_config.new_client_from_config(config_file=kubeconfig, context=context)
        except ConfigException:
            if kubeconfig or context or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                raise
            k8s_config.load_incluster_config()
            api = k8s_client.ApiClient()
    except (ConfigException, OSError) as exc:
        raise DeployError(
            NO_CLUSTER.format(reason=str(exc).strip() or type(exc).__name__)
        ) from None
    try:
        return Cluster(DynamicClient(api))  # reads the API server's discovery documents
    except (ApiException, HTTPError, OSError) as exc:  # unreachable, 401/403 from discovery
        host = api.configuration.host
        raise DeployError(
            f"cannot use the Kubernetes API at {host}: {type(exc).__name__}: {exc}\n"
            "  Is the cluster running and the kubeconfig context the right one? "
            "Try `kubectl cluster-info`."
        ) from None


# --------------------------------------------------------------------------------------------
# Status of the RayService and the rest
# --------------------------------------------------------------------------------------------


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


def _find(docs: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def _get(cluster: ClusterAPI, doc: dict[str, Any]) -> dict | None:
    """The object as the cluster has it; None when absent or when its kind is not served."""
    if not cluster.has_kind(doc["apiVersion"], doc["kind"]):
        return None
    metadata = doc["metadata"]
    return cluster.get(doc["apiVersion"], doc["kind"], metadata["name"], metadata.get("namespace"))


def wait_until_running(
    cluster: ClusterAPI,
    docs: Sequence[dict[str, Any]],
    timeout_s: float,
    out: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Poll the RayService until its applications are RUNNING; a progress line on every change."""
    rayservice_doc = _find(docs, "RayService")[0]
    apps = app_names(rayservice_doc)
    kafka_docs = _find(docs, "Kafka")
    start = clock()
    last_line, last_print = "", -HEARTBEAT_S
    out(f"waiting up to {timeout_s:.0f}s for {describe(rayservice_doc)}: {', '.join(apps)} RUNNING")
    while True:
        state = rayservice_state(_get(cluster, rayservice_doc))
        line = state.line(apps)
        if kafka_docs:
            line += "; Kafka " + condition_ready(_get(cluster, kafka_docs[0]))[1]
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


def print_status(
    cluster: ClusterAPI, docs: Sequence[dict[str, Any]], out: Callable[[str], None] = print
) -> bool:
    """One block per part; True when everything is up."""
    healthy = True
    for doc in _find(docs, "RayService"):
        apps = app_names(doc)
        state = rayservice_state(_get(cluster, doc))
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
        for doc in _find(docs, kind):
            obj = _get(cluster, doc)
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
        for doc in _find(docs, kind):
            obj = _get(cluster, doc)
            if obj is None:
                out(f"{describe(doc)}: not found")
                healthy = False
                continue
            want = (obj.get("spec") or {}).get("replicas", 1)
            ready = (obj.get("status") or {}).get("readyReplicas", 0) or 0
            out(f"{describe(doc)}: {ready}/{want} ready")
            healthy &= ready >= want
    for doc in _find(docs, "Gateway"):
        out(f"{describe(doc)}: {gateway_line(_get(cluster, doc))}")
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


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def preflight(cluster: ClusterAPI, docs: Sequence[dict[str, Any]]) -> None:
    """Every kind must be served before anything is applied: no half-applied stack."""
    missing: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in seen:
            continue
        seen.add(key)
        if not cluster.has_kind(*key):
            missing.setdefault(_group(doc["apiVersion"]), []).append(
                f"{doc['kind']} ({doc['apiVersion']})"
            )
    if missing:
        lines = ["the cluster does not serve these kinds (CRDs missing):"]
        for group, kinds in missing.items():
            lines.append(f"  {', '.join(kinds)}")
            lines.append(
                "    -> " + OPERATOR_HINTS.get(group, "install the operator that provides them")
            )
        raise DeployError("\n".join(lines))


def apply(
    cluster: ClusterAPI,
    docs: Sequence[dict[str, Any]],
    timeout_s: float,
    out: Callable[[str], None] = print,
    **wait_kwargs: Any,
) -> int:
    preflight(cluster, docs)
    for gateway in _find(docs, "Gateway"):
        name = gateway["spec"]["gatewayClassName"]
        if cluster.get("gateway.networking.k8s.io/v1", "GatewayClass", name, None) is None:
            out(
                f"warning: no GatewayClass `{name}`: the Gateway will not route until a Gateway "
                "API implementation provides it (docs/kubernetes.md, step 1; --gateway-class NAME)"
            )
    for doc in ordered(docs):
        cluster.apply(doc)
        out(f"applied {describe(doc)}")
    return 0 if wait_until_running(cluster, docs, timeout_s, out, **wait_kwargs) else 1


def delete(
    cluster: ClusterAPI,
    docs: Sequence[dict[str, Any]],
    keep_data: bool,
    timeout_s: float,
    out: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    deadline = clock() + timeout_s
    topics: list[dict[str, Any]] = []
    for doc in reversed(ordered(docs)):
        if doc["kind"] == "Namespace" and keep_data:
            out(f"kept {describe(doc)} (--keep-data: its volumes stay)")
            continue
        if doc["kind"] in ("Kafka", "KafkaNodePool") and topics:
            # The topic operator (part of the Kafka cluster) must remove the topics' finalizers
            # first, or they block the namespace's deletion forever.
            _wait_gone(cluster, topics, deadline, out, clock, sleep)
            topics = []
        if not cluster.has_kind(doc["apiVersion"], doc["kind"]):
            out(f"skipped {describe(doc)}: kind not served by the cluster")
            continue
        metadata = doc["metadata"]
        found = cluster.delete(
            doc["apiVersion"], doc["kind"], metadata["name"], metadata.get("namespace")
        )
        out(f"{'deleted' if found else 'absent '} {describe(doc)}")
        if found and doc["kind"] == "KafkaTopic":
            topics.append(doc)
    if keep_data:
        out(
            "volumes (Kafka, Redis, MongoDB) kept; `delete` without --keep-data removes the namespace"
        )
    return 0


def _wait_gone(
    cluster: ClusterAPI,
    docs: Sequence[dict[str, Any]],
    deadline: float,
    out: Callable[[str], None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    while True:
        left = [doc for doc in docs if _get(cluster, doc) is not None]
        if not left:
            return
        if clock() >= deadline:
            out("warning: still present (finalizers?): " + ", ".join(describe(d) for d in left))
            return
        sleep(2.0)


def refuse_placeholders(docs: Sequence[dict[str, Any]]) -> None:
    bad = []
    for doc in _find(docs, "Secret"):
        for key, value in (doc.get("data") or {}).items():
            if PLACEHOLDER in base64.b64decode(value).decode(errors="replace").lower():
                bad.append(f"{doc['metadata']['name']}.{key}")
    if bad:
        raise DeployError(
            "secrets.env still has placeholder values (change-me) for: "
            + ", ".join(bad)
            + "\n  edit deployments/k8s/secrets.env (e.g. values from `openssl rand -hex 24`)"
        )


def redacted(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] != "Secret":
        return doc
    shown = dict(doc)
    shown["data"] = {key: "<redacted>" for key in doc.get("data") or {}}
    return shown


def dry_run(command: str, docs: Sequence[dict[str, Any]], namespace: str, verbose: bool) -> int:
    plan = ordered(docs) if command != "delete" else list(reversed(ordered(docs)))
    verb = {"apply": "apply", "delete": "delete", "status": "inspect"}[command]
    print(
        f"dry run: would {verb} {len(plan)} objects in namespace {namespace} (no cluster contacted)"
    )
    for number, doc in enumerate(plan, start=1):
        print(f"  {number:2d}. {describe(doc)}")
    if verbose:
        print(manifests.dump_all_yaml(redacted(doc) for doc in plan), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.deploy",
        description="Deploy votes on Kubernetes (KubeRay, Strimzi): apply, status or delete.",
    )
    parser.add_argument("command", choices=("apply", "status", "delete"))
    parser.add_argument("--namespace", "-n", default=DEFAULT_NAMESPACE, help="default: votes")
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds apply waits for RUNNING (delete: for topics to go); default {DEFAULT_TIMEOUT_S:.0f}",
    )
    parser.add_argument(
        "--image",
        help=f"REGISTRY/votes:TAG, your build; apply refuses the placeholder "
        f"{manifests.IMAGE_REPOSITORY} (unless kustomization.yaml's `images:` replaces it)",
    )
    parser.add_argument(
        "--gateway-class",
        help="GatewayClass of the Gateway (default: gateway.yaml's, `eg` for Envoy Gateway)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list the objects; touch no cluster")
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="with --dry-run: print the YAML too"
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="delete: keep the namespace and the data volumes"
    )
    parser.add_argument(
        "--kustomization",
        type=Path,
        help="the kustomization to deploy (default: <repo>/deployments/k8s); "
        "deployments/k8s-lab/overlay is the lab's single-node set",
    )
    add_repo_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    real_apply = args.command == "apply" and not args.dry_run
    try:
        repo = Repo.at(args.repo)
        rendered = manifests.render_kustomization(
            args.kustomization or repo.k8s,
            namespace=args.namespace,
            images=manifests.image_override(args.image) if args.image else None,
            # Names are all status/delete need; a real apply needs the real secrets.env.
            example_env_fallback=not real_apply,
        )
        if args.gateway_class:
            set_gateway_class(rendered.docs, args.gateway_class)
        if args.command == "apply":
            refuse_placeholder_image(rendered.docs)
        if args.dry_run:
            for note in rendered.notes:
                print(f"note: {note}")
        stale = manifests.check(manifests.generated_files(repo))
        if stale:
            message = "kuberay/rayservice.yaml does not match config.yaml: run `make manifests`"
            if real_apply:
                raise DeployError(message)
            print(f"warning: {message}")
        docs = ordered(rendered.docs)
        if args.dry_run:
            return dry_run(args.command, docs, args.namespace, args.verbose)
        if real_apply:
            refuse_placeholders(docs)
        cluster = connect(args.kubeconfig, args.context)
        if args.command == "apply":
            return apply(cluster, docs, args.timeout)
        if args.command == "status":
            return 0 if print_status(cluster, docs) else 1
        return delete(cluster, docs, args.keep_data, args.timeout)
    except (DeployError, manifests.KustomizeError, RepoNotFound) as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deploy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # progress lines show up as they happen
    sys.exit(main())
