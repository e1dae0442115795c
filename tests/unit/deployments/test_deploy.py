"""The deploy CLI (python -m deployments.deploy): its dry run needs no cluster, and its logic
(order, waiting, status, delete) against a fake cluster and an autospec'd DynamicClient.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deployments.deploy.apply import apply
from deployments.deploy.cluster import FIELD_MANAGER, Cluster
from deployments.deploy.delete import delete
from deployments.deploy.guards import refuse_placeholder_image, refuse_placeholders
from deployments.deploy.objects import DeployError, ordered
from deployments.deploy.status import print_status
from devkit import k8s_validation as kv
from devkit.k8s_validation import (
    PLACEHOLDER,
    REPO,
    main_docs,
    one,
)

# ---------------------------------------------------------------------------------------------
# (e) the deploy CLI's dry run needs no cluster
# ---------------------------------------------------------------------------------------------


def _run_deploy(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env |= {"KUBECONFIG": str(tmp_path / "no-such-kubeconfig"), "HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "deployments.deploy", *args],
        check=False,
        cwd=REPO.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dry_run_lists_the_objects_without_a_kubeconfig(tmp_path: Path) -> None:
    result = _run_deploy(
        tmp_path, "apply", "--dry-run", "--namespace", "votes", "--image", "example.org/votes:1"
    )
    assert result.returncode == 0, result.stderr
    assert "no cluster contacted" in result.stdout
    assert "RayService/votes (votes)" in result.stdout
    listed = re.findall(r"^\s+\d+\. (\S+)", result.stdout, re.MULTILINE)
    assert listed[0] == "Namespace/votes" and listed[-3:] == [
        "Gateway/votes",
        "HTTPRoute/votes-http",
        "GRPCRoute/votes-grpc",
    ]
    assert listed.index("Secret/votes-ray-token") < listed.index("RayService/votes")
    assert (
        listed.index("Secret/votes-secrets")
        < listed.index("Kafka/votes")
        < listed.index("StatefulSet/votes-redis")
        < listed.index("StatefulSet/votes-mongo")
        < listed.index("Deployment/votes-grafana")
        < listed.index("RayService/votes")
    )


def test_dry_run_verbose_prints_yaml_without_secret_values(tmp_path: Path) -> None:
    result = _run_deploy(
        tmp_path,
        "apply",
        "--dry-run",
        "--verbose",
        "--namespace",
        "staging",
        "--image",
        "registry.example/votes:dev",
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout.split("\n---\n", 1)[1]) if d]
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"staging"}
    assert one(docs, "Namespace")["metadata"]["name"] == "staging"
    for secret in (d for d in docs if d["kind"] == "Secret"):
        assert set(secret["data"].values()) == {"<redacted>"}
    assert PLACEHOLDER not in result.stdout
    images = {c["image"] for c in kv.containers_of(one(docs, "RayService"))}
    assert images == {"registry.example/votes:dev"}


def test_apply_refuses_the_placeholder_image_and_says_how_to_set_one(tmp_path: Path) -> None:
    for args in ([], ["--image", "ghcr.io/votes-contest/votes:0.2.0"]):
        result = _run_deploy(tmp_path, "apply", "--dry-run", "--namespace", "votes", *args)
        assert result.returncode == 2, result.stdout
        assert "is a placeholder" in result.stderr and "Traceback" not in result.stderr
        assert "--image REGISTRY/votes:TAG" in result.stderr
        assert "images:" in result.stderr and "newName: REGISTRY/votes" in result.stderr
        assert "docker build" in result.stderr
    # status and delete need no image of yours.
    assert _run_deploy(tmp_path, "delete", "--dry-run").returncode == 0
    # kustomize's images: override counts as much as --image.
    docs = kv.render_layout(REPO.k8s, images={"ghcr.io/votes-contest/votes": "r.example/v:2"}).docs
    refuse_placeholder_image(docs)
    with pytest.raises(DeployError, match="placeholder"):
        refuse_placeholder_image(main_docs())


def test_gateway_class_is_a_parameter(tmp_path: Path) -> None:
    result = _run_deploy(
        tmp_path,
        "apply",
        "--dry-run",
        "-v",
        "--image",
        "r.example/v:1",
        "--gateway-class",
        "cilium",
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout.split("\n---\n", 1)[1]) if d]
    assert one(docs, "Gateway")["spec"]["gatewayClassName"] == "cilium"
    assert one(main_docs(), "Gateway")["spec"]["gatewayClassName"] == "eg"


def test_without_a_kubeconfig_the_cli_says_how_to_point_at_a_cluster(tmp_path: Path) -> None:
    result = _run_deploy(tmp_path, "status", "--namespace", "votes")
    assert result.returncode == 2
    assert "no Kubernetes cluster configured" in result.stderr
    assert "--kubeconfig" in result.stderr and "KUBECONFIG" in result.stderr
    assert "Traceback" not in result.stderr


def test_outside_a_checkout_the_cli_names_the_missing_config_yaml(tmp_path: Path) -> None:
    result = _run_deploy(tmp_path, "apply", "--dry-run", "--repo", str(tmp_path))
    assert result.returncode == 2
    assert f"no config.yaml in {tmp_path.resolve()}" in result.stderr
    assert "Traceback" not in result.stderr


def test_apply_refuses_placeholder_secrets() -> None:
    with pytest.raises(DeployError, match="placeholder values"):
        refuse_placeholders(main_docs())


# ---------------------------------------------------------------------------------------------
# The deploy CLI's logic, against a fake cluster
# ---------------------------------------------------------------------------------------------


class FakeCluster:
    """Serves every kind unless told otherwise; the RayService's status follows a script."""

    def __init__(self, missing: set[str] = frozenset(), statuses: list[dict] | None = None) -> None:
        self.missing = set(missing)
        self.statuses = list(statuses or [])
        self.objects: dict[tuple[str, str], dict] = {}
        self.applied: list[str] = []
        self.deleted: list[str] = []
        self.topic_gets = 0

    def has_kind(self, api_version: str, kind: str) -> bool:
        return kind not in self.missing

    def apply(self, doc: dict) -> None:
        self.applied.append(f"{doc['kind']}/{doc['metadata']['name']}")
        self.objects[(doc["kind"], doc["metadata"]["name"])] = copy.deepcopy(doc)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict | None:
        if kind == "GatewayClass":
            return {"metadata": {"name": name}}
        obj = self.objects.get((kind, name))
        if obj is None:
            return None
        if kind == "RayService" and self.statuses:
            obj = obj | {
                "status": self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            }
        if kind == "Kafka":
            obj = obj | {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        if kind == "KafkaTopic":
            self.topic_gets += 1
            if self.topic_gets > 2:  # the topic operator needs a moment
                return None
        return obj

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        self.deleted.append(f"{kind}/{name}")
        if kind == "KafkaTopic":
            return True
        return self.objects.pop((kind, name), None) is not None


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.5)


def _app_status(status: str, ingress: str = "HEALTHY") -> dict:
    return {
        "observedGeneration": 1,
        "activeServiceStatus": {
            "rayClusterName": "votes-x1",
            "rayClusterStatus": {
                "state": "ready",
                "readyWorkerReplicas": 1,
                "desiredWorkerReplicas": 1,
            },
            "applicationStatuses": {
                "votes": {
                    "status": status,
                    "serveDeploymentStatuses": {
                        "VoteIngress": {"status": ingress},
                        "VotePersister": {"status": "HEALTHY"},
                    },
                }
            },
        },
    }


def test_apply_applies_in_order_and_waits_for_running() -> None:
    cluster = FakeCluster(
        statuses=[
            {},
            _app_status("DEPLOYING", "UPDATING"),
            _app_status("DEPLOYING", "UPDATING"),
            _app_status("RUNNING"),
        ]
    )
    lines: list[str] = []
    clock = FakeClock()
    code = apply(cluster, ordered(main_docs()), 600, lines.append, clock=clock, sleep=clock.sleep)
    assert code == 0, "\n".join(lines)
    kinds = [entry.split("/")[0] for entry in cluster.applied]
    assert kinds[0] == "Namespace" and kinds[-4:] == [
        "RayService",
        "Gateway",
        "HTTPRoute",
        "GRPCRoute",
    ]
    assert (
        kinds.index("Secret")
        < kinds.index("KafkaNodePool")
        < kinds.index("Kafka")
        < kinds.index("KafkaTopic")
    )
    assert cluster.applied.index("StatefulSet/votes-redis") < cluster.applied.index(
        "StatefulSet/votes-mongo"
    )
    assert cluster.applied.index("StatefulSet/votes-mongo") < cluster.applied.index(
        "Deployment/votes-grafana"
    )
    progress = [line for line in lines if line.strip().startswith("[")]
    assert any("app votes DEPLOYING (VoteIngress UPDATING" in line for line in progress)
    assert len(progress) == 3, "a line per change, not per poll"
    assert lines[-1] == "RayService votes: votes RUNNING"


def test_apply_times_out_with_hints() -> None:
    cluster = FakeCluster(statuses=[_app_status("DEPLOYING", "UPDATING")])
    lines: list[str] = []
    clock = FakeClock()
    code = apply(cluster, main_docs(), 60, lines.append, clock=clock, sleep=clock.sleep)
    assert code == 1
    assert any(line.startswith("timed out after 60s") for line in lines)
    assert any("kubectl describe rayservice votes -n votes" in line for line in lines)
    assert clock.now <= 61


def test_apply_stops_on_deploy_failed() -> None:
    failed = _app_status("DEPLOY_FAILED", "UNHEALTHY")
    failed["activeServiceStatus"]["applicationStatuses"]["votes"]["message"] = (
        "ImportError: no module"
    )
    lines: list[str] = []
    clock = FakeClock()
    assert (
        apply(
            FakeCluster(statuses=[failed]),
            main_docs(),
            600,
            lines.append,
            clock=clock,
            sleep=clock.sleep,
        )
        == 1
    )
    assert any("DEPLOY_FAILED: ImportError: no module" in line for line in lines)


def test_apply_without_operators_says_what_to_install() -> None:
    cluster = FakeCluster(missing={"RayService", "Kafka", "KafkaNodePool", "KafkaTopic"})
    with pytest.raises(DeployError) as info:
        apply(cluster, main_docs(), 60, lambda line: None)
    message = str(info.value)
    assert "RayService (ray.io/v1)" in message and "helm install kuberay-operator" in message
    assert "Kafka (kafka.strimzi.io/v1)" in message and "strimzi-kafka-operator" in message
    assert cluster.applied == [], "nothing applied when a kind is missing"


def test_delete_goes_backwards_and_lets_topics_finish_first() -> None:
    cluster = FakeCluster()
    for doc in main_docs():
        cluster.apply(doc)
    lines: list[str] = []
    clock = FakeClock()
    assert (
        delete(cluster, main_docs(), False, 60, lines.append, clock=clock, sleep=clock.sleep) == 0
    )
    kinds = [entry.split("/")[0] for entry in cluster.deleted]
    assert kinds[:4] == ["GRPCRoute", "HTTPRoute", "Gateway", "RayService"]
    assert kinds[-1] == "Namespace"
    assert kinds.index("KafkaTopic") < kinds.index("Kafka")
    assert cluster.topic_gets >= 2, "waited for the topics before deleting Kafka"
    kept = FakeCluster()
    delete(kept, main_docs(), True, 60, lines.append, clock=clock, sleep=clock.sleep)
    assert "Namespace/votes" not in kept.deleted


def test_status_reports_every_part() -> None:
    cluster = FakeCluster(statuses=[_app_status("RUNNING")])
    for doc in main_docs():
        cluster.apply(doc)
    lines: list[str] = []
    healthy = print_status(cluster, main_docs(), lines.append)
    text = "\n".join(lines)
    assert "application votes: RUNNING" in text and "deployment VoteIngress: HEALTHY" in text
    assert "Kafka/votes (votes): Ready" in text
    assert "StatefulSet/votes-redis (votes): 0/1 ready" in text
    assert "Gateway/votes (votes): not programmed yet; no address yet" in text
    assert healthy is False, "the fake StatefulSets report no ready replicas"


def test_cluster_server_side_applies_through_the_dynamic_client() -> None:
    """The real wrapper, against an autospec'd DynamicClient (calls are signature-checked)."""
    from unittest import mock

    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic import DynamicClient, exceptions

    dynamic = mock.create_autospec(DynamicClient, instance=True)
    dynamic.resources = mock.Mock()
    cluster = Cluster(dynamic)
    doc = one(main_docs(), "RayService")
    cluster.apply(doc)
    dynamic.resources.get.assert_called_with(api_version="ray.io/v1", kind="RayService")
    dynamic.server_side_apply.assert_called_once_with(
        dynamic.resources.get.return_value,
        body=doc,
        namespace="votes",
        field_manager=FIELD_MANAGER,
        force_conflicts=True,
    )
    refused = ApiException(status=422, reason="Unprocessable Entity")
    refused.body, refused.headers = (
        '{"message": "spec.foo: Invalid value"}',
        {"Content-Type": "application/json"},
    )
    dynamic.server_side_apply.side_effect = exceptions.UnprocessibleEntityError(refused)
    with pytest.raises(DeployError, match=r"RayService/votes \(votes\) failed: spec.foo"):
        cluster.apply(doc)
    dynamic.resources.get.side_effect = exceptions.ResourceNotFoundError("no such kind")
    assert cluster.has_kind("ray.io/v1", "RayService") is False
