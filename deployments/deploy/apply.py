"""`apply`: check every kind is served, apply in dependency order, wait for RUNNING."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from deployments.deploy.cluster import ClusterAPI
from deployments.deploy.objects import DeployError, api_group, describe, of_kind, ordered
from deployments.deploy.wait import wait_until_running

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
            missing.setdefault(api_group(doc["apiVersion"]), []).append(
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
    for gateway in of_kind(docs, "Gateway"):
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
