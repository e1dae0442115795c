"""What jsonschema cannot see and the API server or KubeRay would refuse, and `validate_manifest`,
which runs every check on one object."""

from __future__ import annotations

import re
from typing import Any

from devkit.k8s_validation.schemas import (
    CUSTOM_GROUPS,
    name_of,
    split_api_version,
    validate_builtin,
    validate_custom,
)

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def containers_of(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                found += [c for c in value if isinstance(c, dict)]
            found += containers_of(value)
    elif isinstance(node, list):
        for item in node:
            found += containers_of(item)
    return found


def name_problems(doc: dict[str, Any]) -> list[str]:
    problems = []
    name = (doc.get("metadata") or {}).get("name") or ""
    if not (_DNS_SUBDOMAIN.match(name) and len(name) <= 253):
        problems.append(f"{name_of(doc)}: metadata.name {name!r} is not a DNS-1123 subdomain")
    if doc.get("kind") in ("Service", "RayService") and not (
        _DNS_LABEL_1035.match(name) and len(name) <= 63
    ):
        problems.append(f"{name_of(doc)}: metadata.name {name!r} must be a DNS-1035 label")
    for container in containers_of(doc):
        for port in container.get("ports") or []:
            port_name = port.get("name")
            if port_name is not None and not (
                len(port_name) <= 15
                and _PORT_NAME.match(port_name)
                and "--" not in port_name
                and re.search("[a-z]", port_name)
            ):
                problems.append(
                    f"{name_of(doc)}: container {container.get('name')}: port name {port_name!r} "
                    "is not an IANA service name (<= 15 chars of a-z, 0-9, '-')"
                )
    return problems


def kuberay_operator_problems(doc: dict[str, Any]) -> list[str]:
    """What KubeRay's ValidateRayClusterSpec (v1.7) refuses at reconcile time, beyond the CRD."""
    if doc.get("kind") != "RayService":
        return []
    problems = []
    cluster = (doc.get("spec") or {}).get("rayClusterConfig") or {}
    head = cluster.get("headGroupSpec") or {}
    groups = [("head", head)] + [
        (w.get("groupName"), w) for w in cluster.get("workerGroupSpecs") or []
    ]
    autoscaling = bool(cluster.get("enableInTreeAutoscaling"))
    options = cluster.get("autoscalerOptions") or {}
    v2 = autoscaling and options.get("version") == "v2"
    head_containers = ((head.get("template") or {}).get("spec") or {}).get("containers") or []
    head_env = (
        {e.get("name"): e for e in (head_containers[0].get("env") or [])} if head_containers else {}
    )
    if not head_containers:
        problems.append("RayService: headGroupSpec needs a container")
    for group_name, group in groups:
        problems += _group_problems(group_name, group, v2)
    if "RAY_enable_autoscaler_v2" in head_env:
        if autoscaling and "version" in options:
            problems.append(
                "RayService: both autoscalerOptions.version and head env "
                "RAY_enable_autoscaler_v2 are set"
            )
        if not autoscaling and head_env["RAY_enable_autoscaler_v2"].get("value") in ("1", "true"):
            problems.append("RayService: RAY_enable_autoscaler_v2 without enableInTreeAutoscaling")
    if (cluster.get("authOptions") or {}).get("mode") == "token":
        version = tuple(int(x) for x in re.findall(r"\d+", cluster.get("rayVersion") or "")[:3])
        if not version or version < (2, 52, 0):
            problems.append("RayService: authOptions.mode token needs rayVersion >= 2.52.0")
    if (head.get("headService") or {}).get("metadata", {}).get("name"):
        problems.append("RayService: headGroupSpec.headService.metadata.name must not be set")
    for group_name, group in groups[1:]:
        low, high = group.get("minReplicas", 0), group.get("maxReplicas", 2**31 - 1)
        replicas = group.get("replicas", low)
        if not all(isinstance(v, int) for v in (low, high, replicas)):
            continue  # a type error; the CRD schema reports it
        if not low <= replicas <= high:
            problems.append(
                f"RayService: group {group_name}: replicas not within [minReplicas, maxReplicas]"
            )
    return problems


def _group_problems(group_name: str, group: dict[str, Any], autoscaler_v2: bool) -> list[str]:
    """KubeRay's checks of one head or worker group."""
    problems = []
    spec = (group.get("template") or {}).get("spec") or {}
    if not spec.get("containers"):
        problems.append(f"RayService: group {group_name} needs a container")
    start = group.get("rayStartParams") or {}
    if any(start.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")) and group.get(
        "resources"
    ):
        problems.append(
            f"RayService: group {group_name}: resources in both rayStartParams and resources"
        )
    if "labels" in start:
        problems.append(
            f"RayService: group {group_name}: rayStartParams['labels'] is not supported"
        )
    if autoscaler_v2 and spec.get("restartPolicy") not in (None, "", "Never"):
        problems.append(
            f"RayService: group {group_name}: autoscaler v2 needs restartPolicy Never or unset"
        )
    return problems


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def validate_manifest(doc: dict[str, Any]) -> list[str]:
    """Every problem of one manifest ([] when it is valid)."""
    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        return [f"not a Kubernetes object: {str(doc)[:80]}"]
    group, _ = split_api_version(doc["apiVersion"])
    problems = validate_custom(doc) if group in CUSTOM_GROUPS else validate_builtin(doc)
    return problems + name_problems(doc) + kuberay_operator_problems(doc)
