"""Every manifest validates strictly: built-in kinds against the Kubernetes schemas, KubeRay and
Strimzi resources against the upstream CRDs vendored in devkit/k8s_schemas; and the checks can fail.

Offline and fast: no cluster, no kubectl (the validator: devkit/k8s_validation/).
"""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest

from deployments.deploy.status import rayservice_state
from deployments.manifests.sources import load_config
from devkit import k8s_validation as kv
from devkit.k8s_validation import (
    LAYOUTS,
    REPO,
    head_container,
    main_docs,
    one,
    rendered,
)

SCHEMAS = REPO.root / "devkit" / "k8s_schemas"


# ---------------------------------------------------------------------------------------------
# (b) every manifest validates strictly
# ---------------------------------------------------------------------------------------------


def test_crd_schemas_are_present() -> None:
    """Fail, never skip, without the CRD copies the CR checks depend on."""
    assert SCHEMAS.is_dir(), f"{SCHEMAS} missing: the vendored upstream CRDs (see its README.md)"
    assert kv.SCHEMAS_DIR.resolve() == SCHEMAS.resolve() or "VOTES_K8S_SCHEMAS" in os.environ
    for relative in kv.CRD_FILES.values():
        assert (kv.SCHEMAS_DIR / relative).is_file(), f"{kv.SCHEMAS_DIR / relative} missing"


def _all_manifests() -> list[Any]:
    params = []
    for layout in LAYOUTS:
        for doc in rendered(layout):
            params.append(pytest.param(doc, id=f"{layout}:{kv.name_of(doc)}"))
    for path in sorted(REPO.kuberay.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for doc in kv.load_yaml_docs(path):
                params.append(
                    pytest.param(doc, id=f"file {path.relative_to(REPO.root)}:{kv.name_of(doc)}")
                )
    return params


@pytest.mark.parametrize("doc", _all_manifests())
def test_manifest_is_valid(doc: dict[str, Any]) -> None:
    problems = kv.validate_manifest(doc)
    assert not problems, "\n".join(problems)


def test_strimzi_resources_use_the_v1_api_and_also_validate_as_v1beta2() -> None:
    """v1 is what Strimzi 0.49+ and 1.x serve; 0.51 still serves v1beta2 (deprecated). The
    manifests use no field either version lacks, so both validate."""
    strimzi = [d for d in main_docs() if d["apiVersion"].startswith("kafka.strimzi.io/")]
    assert {d["kind"] for d in strimzi} == {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}
    for doc in strimzi:
        assert doc["apiVersion"] == "kafka.strimzi.io/v1"
        assert kv.crd_deprecation("kafka.strimzi.io", "v1", doc["kind"]) is None
        assert kv.crd_deprecation(
            "kafka.strimzi.io", "v1beta2", doc["kind"]
        )  # the README's surprise
        problems = kv.validate_custom(doc, version="v1beta2")
        assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# (d) the checks can fail
# ---------------------------------------------------------------------------------------------


def _mutate(doc: dict[str, Any], change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    change(doc)
    return doc


def _rayservice() -> dict[str, Any]:
    return one(main_docs(), "RayService")


def _cluster(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["rayClusterConfig"]


BROKEN = {
    "typo enableInTreeAutoScaling": (
        lambda: _mutate(_rayservice(), lambda d: _cluster(d).update(enableInTreeAutoScaling=True)),
        "'enableInTreeAutoScaling' was unexpected",
    ),
    "typo in a head container (pod template inside the CR)": (
        lambda: _mutate(_rayservice(), lambda d: head_container(d).update(imagePullPolcy="Always")),
        "'imagePullPolcy' was unexpected",
    ),
    "maxReplicas as a string": (
        lambda: _mutate(
            _rayservice(), lambda d: _cluster(d)["workerGroupSpecs"][0].update(maxReplicas="4")
        ),
        "is not of type 'integer'",
    ),
    "upscalingMode outside the enum": (
        lambda: _mutate(
            _rayservice(), lambda d: _cluster(d)["autoscalerOptions"].update(upscalingMode="Fast")
        ),
        "is not one of",
    ),
    "typo in CR metadata": (
        lambda: _mutate(_rayservice(), lambda d: d["metadata"].update(lables={"a": "b"})),
        "'lables' was unexpected",
    ),
    "worker group without groupName": (
        lambda: _mutate(
            _rayservice(), lambda d: _cluster(d)["workerGroupSpecs"][0].pop("groupName")
        ),
        "'groupName' is a required property",
    ),
    "autoscaler v2 env next to autoscalerOptions.version": (
        lambda: _mutate(
            _rayservice(),
            lambda d: head_container(d)["env"].append(
                {"name": "RAY_enable_autoscaler_v2", "value": "1"}
            ),
        ),
        "RAY_enable_autoscaler_v2 are set",
    ),
    "port name longer than 15 characters": (
        lambda: _mutate(
            _rayservice(), lambda d: head_container(d)["ports"][0].update(name="gcs-server-port-x")
        ),
        "is not an IANA service name",
    ),
    "typo in a KafkaTopic": (
        lambda: _mutate(
            one(main_docs(), "KafkaTopic", "votes"), lambda d: d["spec"].update(partitons=6)
        ),
        "'partitons' was unexpected",
    ),
    "Kafka listener type outside the enum": (
        lambda: _mutate(
            one(main_docs(), "Kafka"),
            lambda d: d["spec"]["kafka"]["listeners"][0].update(type="internel"),
        ),
        "is not one of",
    ),
    "Kafka storage on the v1 Kafka (moved to node pools)": (
        lambda: _mutate(one(main_docs(), "Kafka"), lambda d: d["spec"]["kafka"].update(replicas=3)),
        "'replicas' was unexpected",
    ),
    "typo in a built-in Deployment": (
        lambda: _mutate(
            one(main_docs(), "Deployment", "votes-grafana"),
            lambda d: d["spec"]["template"]["spec"]["containers"][0].update(
                imagePullPolcy="Always"
            ),
        ),
        "'imagePullPolcy' was unexpected",
    ),
    "built-in kind without a schema": (
        lambda: {"apiVersion": "v1", "kind": "ConfigMapp", "metadata": {"name": "x"}},
        "no Kubernetes 1.33 schema",
    ),
    "name that is no DNS name": (
        lambda: _mutate(
            one(main_docs(), "Service", "votes-redis"),
            lambda d: d["metadata"].update(name="Votes_Redis"),
        ),
        "is not a DNS-1123 subdomain",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_validator_rejects_broken_manifests(case: str) -> None:
    build, expected = BROKEN[case]
    problems = kv.validate_manifest(build())
    assert any(expected in problem for problem in problems), problems


def test_schema_adjustments_accept_what_the_api_server_accepts() -> None:
    """required-with-default (minReplicas/maxReplicas) and nullable fields must not fail."""
    doc = _mutate(
        _rayservice(),
        lambda d: [
            _cluster(d)["workerGroupSpecs"][0].pop(k) for k in ("minReplicas", "maxReplicas")
        ],
    )
    assert kv.validate_custom(doc) == []
    schema = kv.strict_structural_schema(
        {
            "type": "object",
            "required": ["a", "b"],
            "properties": {
                "a": {"type": "integer", "default": 1},
                "b": {"type": "string", "nullable": True},
                "c": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {},
                },
            },
        }
    )
    assert schema["required"] == ["b"] and schema["additionalProperties"] is False
    assert schema["properties"]["b"]["type"] == ["string", "null"]
    assert "additionalProperties" not in schema["properties"]["c"]


def test_serve_config_validator_rejects_unknown_keys() -> None:
    config = load_config(REPO.config)
    config["applications"][0]["deployments"][0]["num_replica"] = 3
    config["htp_options"] = {}
    problems = kv.serve_config_problems(config)
    assert any("num_replica: unknown field of DeploymentSchema" in p for p in problems), problems
    assert any("htp_options: unknown field" in p for p in problems), problems
    config = load_config(REPO.config)
    config["applications"][0]["deployments"][0]["num_replicas"] = -1
    assert kv.serve_config_problems(config)


def test_rayservice_status_paths_exist_in_the_crd() -> None:
    """The deploy CLI reads status.activeServiceStatus.applicationStatuses.<app>.status (v1.7.0):
    a status in that shape validates against the strict CRD schema, a misspelt one does not."""
    status = {
        "serviceStatus": "Running",
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "NonZeroServeEndpoints",
                "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
        "activeServiceStatus": {
            "rayClusterName": "votes-abcde",
            "rayClusterStatus": {
                "state": "ready",
                "readyWorkerReplicas": 1,
                "desiredWorkerReplicas": 1,
            },
            "applicationStatuses": {
                "votes": {
                    "status": "RUNNING",
                    "message": "",
                    "serveDeploymentStatuses": {"VoteIngress": {"status": "HEALTHY"}},
                }
            },
        },
    }
    doc = _mutate(_rayservice(), lambda d: d.update(status=status))
    assert kv.validate_custom(doc) == []
    state = rayservice_state(doc | {"metadata": {**doc["metadata"], "generation": 1}})
    assert state.running(["votes"]) and state.deployments["votes"] == {"VoteIngress": "HEALTHY"}
    wrong = _mutate(doc, lambda d: d["status"]["activeServiceStatus"].update(applicationStatus={}))
    assert any("'applicationStatus' was unexpected" in p for p in kv.validate_custom(wrong))
