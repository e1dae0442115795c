"""Offline validation of Kubernetes manifests, for any test that writes or generates them.

    from tests.k8s_validation import validate_manifest, render_layout
    problems = validate_manifest(doc)          # [] when valid; else "Kind/name: path: message"

Also what the manifest tests (tests/unit/test_manifests_*.py, test_deploy_cli.py) share: the
checkout they test (REPO), its kustomize layouts rendered, and lookups in the rendered objects.

- Built-in kinds: `kubernetes_validate` (Kubernetes 1.33 schemas, strict: unknown fields fail).
  A built-in kind without a schema is a failure, never a skip.
- KubeRay, Strimzi and Gateway API custom resources: the upstream CRDs vendored in tests/k8s_schemas
  (see its README), made strict the way that README says: `nullable` widened to null, fields that are
  required but defaulted by the API server dropped from `required`, and `additionalProperties:
  false` on every object with `properties` (except x-kubernetes-preserve-unknown-fields), so a
  typo such as `enableInTreeAutoScaling` fails instead of being dropped by the API server.
  The CR's `metadata` (just `type: object` in CRDs) is checked against ObjectMeta.
- What jsonschema cannot see and the operators or API server would refuse: object names, container
  port names, and the checks of KubeRay's own validation (`kuberay_operator_problems`).
- Serve configs (`serve_config_problems`): Ray's ServeDeploySchema, plus unknown keys, which that
  pydantic schema ignores.

The CRD folder missing is a failure with a message (`SchemasMissing`), never a skip.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import typing
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from deployments import manifests
from deployments.repo import Repo

# The checkout the tests run in; the tooling is told where it is, as its command lines are.
REPO = Repo.at(Path(__file__).resolve().parents[1])
LAYOUTS = {
    "deployments/k8s": REPO.k8s,
    "deployments/k8s/optional": REPO.k8s / "optional",
    "kuberay": REPO.kuberay,
}
# The value secrets.env.example gives every secret.
PLACEHOLDER = "change-me"

KUBERNETES_VERSION = "1.33"
# The vendored upstream CRDs; VOTES_K8S_SCHEMAS points elsewhere to try other versions.
SCHEMAS_DIR = Path(
    os.environ.get("VOTES_K8S_SCHEMAS", Path(__file__).resolve().parent / "k8s_schemas")
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

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


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
            f"{label}: no Kubernetes {KUBERNETES_VERSION} schema for {doc['apiVersion']} {doc['kind']}"
        ]
    except kubernetes_validate.ValidationError as error:
        return [f"{label}: {_path(error.absolute_path)}: {error.message}"]
    return []


def validate_builtin(doc: dict[str, Any]) -> list[str]:
    return _builtin_problems(doc)


# --------------------------------------------------------------------------------------------
# Checks beyond the schemas
# --------------------------------------------------------------------------------------------


def _containers(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                found += [c for c in value if isinstance(c, dict)]
            found += _containers(value)
    elif isinstance(node, list):
        for item in node:
            found += _containers(item)
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
    for container in _containers(doc):
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
                "RayService: both autoscalerOptions.version and head env RAY_enable_autoscaler_v2 are set"
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
        problems.append(f"RayService: group {group_name}: rayStartParams['labels'] is not supported")
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


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render_layout(directory: Path, **kwargs: Any) -> manifests.Rendered:
    """`kustomize build directory`, with example env files standing in for missing secrets."""
    kwargs.setdefault("example_env_fallback", True)
    return manifests.render_kustomization(directory, **kwargs)


def rendered(layout: str) -> list[dict[str, Any]]:
    """The objects of one of LAYOUTS."""
    return render_layout(LAYOUTS[layout]).docs


def main_docs() -> list[dict[str, Any]]:
    """What `kubectl apply -k deployments/k8s` applies."""
    return rendered("deployments/k8s")


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def head_container(rayservice: dict[str, Any]) -> dict[str, Any]:
    return rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"][
        "containers"
    ][0]


def worker_containers(rayservice: dict[str, Any]) -> list[dict[str, Any]]:
    groups = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    return [group["template"]["spec"]["containers"][0] for group in groups]


# --------------------------------------------------------------------------------------------
# Serve configs
# --------------------------------------------------------------------------------------------


def _models_in(annotation: Any) -> list[type]:
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type] = []
    for argument in typing.get_args(annotation):
        found += _models_in(argument)
    return found


def unknown_keys(model: type, data: Any, path: str) -> list[str]:
    """Keys a pydantic model does not define, recursively (Ray's Serve schemas ignore them)."""
    if not isinstance(data, dict):
        return []
    fields = model.model_fields
    by_name = dict(fields) | {f.alias: f for f in fields.values() if f.alias}
    problems = []
    for key, value in data.items():
        if key not in by_name:
            problems.append(f"{path}.{key}: unknown field of {model.__name__}")
            continue
        models = _models_in(by_name[key].annotation)
        if not models:
            continue
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            where = f"{path}.{key}" + (f"[{index}]" if isinstance(value, list) else "")
            problems += unknown_keys(models[0], item, where)
    return problems


def serve_config_problems(serve_config: Any) -> list[str]:
    """Ray's own ServeDeploySchema (what `serve deploy` and KubeRay submit to), strictly."""
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    try:
        ServeDeploySchema.model_validate(serve_config)
    except ValidationError as exc:
        return [f"serve config: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    return unknown_keys(ServeDeploySchema, serve_config, "serve config")
