"""The objects to deploy: their order, how messages name them, the choices the CLI overrides."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

DEFAULT_NAMESPACE = "votes"


class DeployError(Exception):
    """A problem the user can fix; the message says how."""


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


def api_group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def of_kind(docs: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]
