"""Kubernetes objects against their schemas: built-in kinds (kubernetes_validate) and the
KubeRay, Strimzi and Gateway API custom resources (the upstream CRDs in devkit/k8s_schemas, made
strict as devkit/k8s_validation/__init__.py says)."""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

KUBERNETES_VERSION = "1.33"
# The vendored upstream CRDs; VOTES_K8S_SCHEMAS points elsewhere to try other versions.
SCHEMAS_DIR = Path(
    os.environ.get("VOTES_K8S_SCHEMAS", Path(__file__).resolve().parents[1] / "k8s_schemas")
)
# (group, kind) -> CRD file under SCHEMAS_DIR
CRD_FILES = {
    ("ray.io", "RayService"): "kuberay/ray.io_rayservices.yaml",
    ("ray.io", "RayCluster"): "kuberay/ray.io_rayclusters.yaml",
    ("kafka.strimzi.io", "Kafka"): "strimzi/040-Crd-kafka.yaml",
    ("kafka.strimzi.io", "KafkaNodePool"): "strimzi/045-Crd-kafkanodepool.yaml",
    ("kafka.strimzi.io", "KafkaTopic"): "strimzi/043-Crd-kafkatopic.yaml",
    ("kafka.strimzi.io", "KafkaUser"): "strimzi/044-Crd-kafkauser.yaml",
    ("gateway.networking.k8s.io", "GatewayClass"): (
        "gateway-api/gateway.networking.k8s.io_gatewayclasses.yaml"
    ),
    ("gateway.networking.k8s.io", "Gateway"): "gateway-api/gateway.networking.k8s.io_gateways.yaml",
    ("gateway.networking.k8s.io", "HTTPRoute"): (
        "gateway-api/gateway.networking.k8s.io_httproutes.yaml"
    ),
    ("gateway.networking.k8s.io", "GRPCRoute"): (
        "gateway-api/gateway.networking.k8s.io_grpcroutes.yaml"
    ),
    ("gateway.networking.k8s.io", "ReferenceGrant"): (
        "gateway-api/gateway.networking.k8s.io_referencegrants.yaml"
    ),
}
CUSTOM_GROUPS = {group for group, _ in CRD_FILES}


class SchemasMissing(AssertionError):
    """The CRD copies are not where the tests expect them."""


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def name_of(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


# --------------------------------------------------------------------------------------------
# CRD schemas
# --------------------------------------------------------------------------------------------


def strict_structural_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI structural schema (CRD) as a strict JSON schema; see the module docstring."""
    schema = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item)
            return
        if not isinstance(node, dict):
            return
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        properties = node.get("properties")
        if isinstance(properties, dict):
            if "required" in node:
                node["required"] = [
                    name
                    for name in node["required"]
                    if not (
                        isinstance(properties.get(name), dict) and "default" in properties[name]
                    )
                ]
                if not node["required"]:
                    del node["required"]
            if (
                not node.get("x-kubernetes-preserve-unknown-fields")
                and "additionalProperties" not in node
            ):
                node["additionalProperties"] = False
            for child in properties.values():
                visit(child)
        for key in ("items", "additionalProperties", "not"):
            visit(node.get(key))
        for key in ("anyOf", "allOf", "oneOf"):
            visit(node.get(key))

    visit(schema)
    return schema


@functools.cache
def _crd_documents(relative: str) -> list[dict[str, Any]]:
    path = SCHEMAS_DIR / relative
    if not path.is_file():
        raise SchemasMissing(
            f"CRD schema {path} not found: the manifest tests need the upstream CRDs in "
            f"{SCHEMAS_DIR} (see its README.md); set VOTES_K8S_SCHEMAS to their folder"
        )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for doc in yaml.load_all(path.read_text(), Loader=loader) if doc]


def crd_versions(group: str, kind: str) -> list[str]:
    crd = _crd(group, kind)
    return [version["name"] for version in crd["spec"]["versions"] if version.get("served")]


def _crd(group: str, kind: str) -> dict[str, Any]:
    relative = CRD_FILES.get((group, kind))
    if relative is None:
        raise KeyError(f"no CRD file known for {kind} of {group}")
    for doc in _crd_documents(relative):
        if doc.get("kind") == "CustomResourceDefinition" and doc["spec"]["names"]["kind"] == kind:
            return doc
    raise SchemasMissing(f"{relative} holds no CRD for {kind}")


@functools.cache
def crd_validator(group: str, version: str, kind: str) -> jsonschema.Draft202012Validator:
    crd = _crd(group, kind)
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            if not entry.get("served"):
                raise KeyError(f"{kind} {group}/{version} is not served by this CRD")
            schema = strict_structural_schema(entry["schema"]["openAPIV3Schema"])
            return jsonschema.Draft202012Validator(schema)
    raise KeyError(f"{kind}: the CRD has no version {version} (it has {crd_versions(group, kind)})")


def crd_deprecation(group: str, version: str, kind: str) -> str | None:
    for entry in _crd(group, kind)["spec"]["versions"]:
        if entry["name"] == version and entry.get("deprecated"):
            return entry.get("deprecationWarning") or f"{group}/{version} {kind} is deprecated"
    return None


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "<root>"


def validate_custom(doc: dict[str, Any], version: str | None = None) -> list[str]:
    """A KubeRay/Strimzi custom resource against its CRD (optionally as another served version)."""
    group, doc_version = split_api_version(doc["apiVersion"])
    try:
        validator = crd_validator(group, version or doc_version, doc["kind"])
    except KeyError as exc:
        return [f"{name_of(doc)}: {exc.args[0]}"]
    problems = [
        f"{name_of(doc)}: {_path(error.absolute_path)}: {error.message}"
        for error in sorted(
            validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))
        )
    ]
    # CRDs say only `metadata: {type: object}`; check it as the ObjectMeta it is.
    problems += _builtin_problems(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc.get("metadata") or {}},
        label=name_of(doc),
    )
    return problems


# --------------------------------------------------------------------------------------------
# Built-in kinds
# --------------------------------------------------------------------------------------------


def _builtin_problems(doc: dict[str, Any], label: str | None = None) -> list[str]:
    label = label or name_of(doc)
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except SchemaNotFoundError:
        return [
            (
                f"{label}: no Kubernetes {KUBERNETES_VERSION} schema for "
                f"{doc['apiVersion']} {doc['kind']}"
            )
        ]
    except kubernetes_validate.ValidationError as error:
        return [f"{label}: {_path(error.absolute_path)}: {error.message}"]
    return []


def validate_builtin(doc: dict[str, Any]) -> list[str]:
    return _builtin_problems(doc)
