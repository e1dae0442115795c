"""The deploy CLI's platform options (deployments/deploy/platform.py) on the rendered manifests:
each moves exactly the flows it names, judged by test_security's NetworkPolicy evaluator, and bad
values are refused with the option's name.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from deployments.deploy.objects import DeployError
from deployments.deploy.platform import Platform, apply_platform
from devkit import k8s_validation as kv
from tests.unit.deployments.deploy.test_cli import _run_deploy
from tests.unit.deployments.k8s.test_security import (
    HOST,
    NAMESPACE,
    Pod,
    allowed,
    kafka_listener_ports,
    outside_pods,
    ray_pod_models,
    strimzi_pods,
    workload_pods,
)

GKE_HEALTH_CHECKS = ["35.191.0.0/16", "130.211.0.0/22"]


def deployed(platform: Platform, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    docs = copy.deepcopy(kv.main_docs())
    apply_platform(docs, platform, namespace)
    return [doc for doc in docs if doc["kind"] == "NetworkPolicy"]


def worker() -> Pod:
    return next(pod for role, pod in ray_pod_models().items() if role != "head")


def test_the_defaults_change_nothing() -> None:
    before = [d for d in kv.main_docs() if d["kind"] == "NetworkPolicy"]
    assert deployed(Platform()) == before


def test_the_operators_namespaces_move_their_rules() -> None:
    """GKE's managed KubeRay, or Strimzi installed elsewhere: only the named namespace is let in."""
    policies = deployed(
        Platform(kuberay_namespace="elsewhere", strimzi_namespace="envoy-gateway-system")
    )
    head = ray_pod_models()["head"]
    kafka = strimzi_pods()["kafka"]
    kuberay = outside_pods()["kuberay-operator"]
    moved = Pod("kuberay-operator", kuberay.labels, namespace="elsewhere")
    assert allowed(moved, head, head.ports["dashboard"], in_force=policies)
    assert not allowed(kuberay, head, head.ports["dashboard"], in_force=policies)
    strimzi = outside_pods()["strimzi-operator"]
    moved = Pod("strimzi", strimzi.labels, namespace="envoy-gateway-system")
    for port in (9090, 9091, 8443):
        assert allowed(moved, kafka, port, in_force=policies), port
        assert not allowed(strimzi, kafka, port, in_force=policies), port


def test_the_gateway_namespace_and_the_deploy_namespace_select_the_data_plane() -> None:
    policies = deployed(Platform(gateway_namespace="elsewhere"), namespace="shop")
    target = worker()
    port = target.ports["serve"]
    labels = dict(outside_pods()["gateway"].labels)
    ours = Pod("envoy", labels | {"gateway.envoyproxy.io/owning-gateway-namespace": "shop"})
    for namespace, gateway_namespace, expected in [
        ("elsewhere", "shop", True),
        ("envoy-gateway-system", "shop", False),  # the default namespace no longer
        ("elsewhere", NAMESPACE, False),  # a Gateway `votes` of the namespace votes is not ours
    ]:
        source = Pod(
            "envoy",
            ours.labels | {"gateway.envoyproxy.io/owning-gateway-namespace": gateway_namespace},
            namespace=namespace,
        )
        assert allowed(source, target, port, in_force=policies) == expected, source


def test_allow_from_lets_the_load_balancers_ranges_reach_the_serve_ports_only() -> None:
    policies = deployed(Platform(allow_from=GKE_HEALTH_CHECKS))
    target = worker()
    health_check = Pod("gke-health-check", {}, namespace=HOST, ip="35.191.10.20")
    proxy = Pod("gke-proxy", {}, namespace=HOST, ip="130.211.2.3")
    stranger = Pod("stranger", {}, namespace=HOST, ip="198.51.100.1")
    for name in ("serve", "serve-grpc"):
        port = target.ports[name]
        assert allowed(health_check, target, port, in_force=policies), name
        assert allowed(proxy, target, port, in_force=policies), name
        assert not allowed(stranger, target, port, in_force=policies), name
    assert not allowed(health_check, target, target.ports["metrics"], in_force=policies)
    assert not allowed(health_check, workload_pods()["redis"], 6379, in_force=policies)
    before = [d for d in kv.main_docs() if d["kind"] == "NetworkPolicy"]
    assert not allowed(health_check, target, target.ports["serve"], in_force=before)


def test_api_server_narrows_the_api_rules_and_leaves_the_others() -> None:
    policies = deployed(Platform(api_server=["10.0.0.2/32"]))
    head = ray_pod_models()["head"]
    pods = outside_pods()
    assert allowed(head, pods["api-server"], 443, in_force=policies)
    other_api = Pod("other", {}, namespace=HOST, ip="10.9.9.9")
    for source in (head, workload_pods()["prometheus"], strimzi_pods()["entity-operator"]):
        assert allowed(source, pods["api-server"], 6443, in_force=policies), source.name
        assert not allowed(source, other_api, 443, in_force=policies), source.name
        assert not allowed(source, pods["internet"], 443, in_force=policies), source.name
    # Grafana's plugin download is not an API server rule.
    assert allowed(workload_pods()["grafana"], pods["internet"], 443, in_force=policies)
    assert allowed(worker(), strimzi_pods()["kafka"], kafka_listener_ports()["scram"])


def test_dns_adds_a_node_local_cache_and_nothing_else() -> None:
    """NodeLocal DNSCache answers on a link-local address: DNS there, nothing else there."""
    policies = deployed(Platform(dns=["169.254.20.10/32"]))
    cache = Pod("node-local-dns", {}, namespace=HOST, ip="169.254.20.10")
    for source in (worker(), ray_pod_models()["head"], workload_pods()["redis"]):
        for protocol in ("UDP", "TCP"):
            assert allowed(source, cache, 53, in_force=policies, protocol=protocol), source.name
        assert not allowed(source, cache, 80, in_force=policies), source.name
        assert not allowed(source, outside_pods()["metadata-server"], 53, in_force=policies)
    before = [d for d in kv.main_docs() if d["kind"] == "NetworkPolicy"]
    assert not allowed(worker(), cache, 53, in_force=before, protocol="UDP")


@pytest.mark.parametrize(
    ("platform", "option"),
    [
        (Platform(allow_from=["35.191.0.0/33"]), "--allow-from"),
        (Platform(allow_from=["35.191.0.1/16"]), "--allow-from"),
        (Platform(api_server=["api.example.org"]), "--api-server"),
        (Platform(kuberay_namespace="Ray_System"), "--kuberay-namespace"),
        (Platform(gateway_namespace=""), "--gateway-namespace"),
        (Platform(dns=["169.254.20.10/40"]), "--dns"),
    ],
)
def test_bad_values_are_refused_with_the_options_name(platform: Platform, option: str) -> None:
    docs = copy.deepcopy(kv.main_docs())
    with pytest.raises(DeployError, match=option):
        apply_platform(docs, platform, NAMESPACE)


def test_namespaces_are_renamed_at_once() -> None:
    """Operators swapped between the two default namespaces stay swapped (no double rename)."""
    policies = deployed(Platform(kuberay_namespace="strimzi", strimzi_namespace="kuberay-system"))
    head = ray_pod_models()["head"]
    kuberay = Pod("kuberay", outside_pods()["kuberay-operator"].labels, namespace="strimzi")
    assert allowed(kuberay, head, head.ports["dashboard"], in_force=policies)
    strimzi = Pod("strimzi", outside_pods()["strimzi-operator"].labels, namespace="kuberay-system")
    assert allowed(strimzi, strimzi_pods()["kafka"], 8443, in_force=policies)


def test_the_cli_takes_the_options(tmp_path: Path) -> None:
    args = ["apply", "--dry-run", "--verbose", "--image", "example.org/votes:1"]
    args += ["--allow-from", GKE_HEALTH_CHECKS[0], "--kuberay-namespace", "gke-ray"]
    result = _run_deploy(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    assert f"cidr: {GKE_HEALTH_CHECKS[0]}" in result.stdout
    assert "kubernetes.io/metadata.name: gke-ray" in result.stdout
    result = _run_deploy(tmp_path, *args[:5], "--api-server", "not-a-range")
    assert result.returncode == 2
    assert "--api-server 'not-a-range'" in result.stderr
