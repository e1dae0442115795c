"""What `make k8s-lab` asserts after the deploy (deployments/k8s-lab/lab_checks.py): pure parts.

A Service with a selector must have a ready endpoint; a Service without one (KubeRay's
Services before Serve is healthy, an ExternalName) is shown, never failed.
"""

from __future__ import annotations

from typing import Any

import lab_checks


def service(name: str, selector: dict[str, str] | None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, **spec.pop("metadata", {})},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.9", "selector": selector, **spec},
    }


def endpoint_slice(service_name: str, *endpoints: tuple[str, bool]) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"kubernetes.io/service-name": service_name}},
        "endpoints": [
            {
                "targetRef": {"name": pod},
                "conditions": {"ready": ready},
                "addresses": ["10.244.0.5"],
            }
            for pod, ready in endpoints
        ],
    }


def test_endpoints_are_grouped_by_service_with_their_readiness() -> None:
    slices = [
        endpoint_slice("votes-redis", ("votes-redis-0", True)),
        endpoint_slice("votes-head-svc", ("head", False)),
        endpoint_slice("votes-redis", ("votes-redis-1", False)),
        {"metadata": {"labels": {}}, "endpoints": [{"addresses": ["10.0.0.1"]}]},  # no Service
        {"metadata": {"labels": {"kubernetes.io/service-name": "bare"}}, "endpoints": None},
        {
            "metadata": {"labels": {"kubernetes.io/service-name": "by-address"}},
            "endpoints": [{"addresses": ["10.0.0.1", "10.0.0.2"]}],
        },
    ]
    assert lab_checks.endpoints_from_slices(slices) == {
        "votes-redis": [("votes-redis-0", True), ("votes-redis-1", False)],
        "votes-head-svc": [("head", False)],
        "by-address": [("10.0.0.1,10.0.0.2", False)],
    }


def test_a_service_with_a_selector_and_no_ready_endpoint_fails() -> None:
    services = [
        service("votes-redis", {"app": "votes-redis"}),
        service("votes-mongo", {"app": "votes-mongo"}, clusterIP="None"),
        service("external", None, type="ExternalName"),
    ]
    endpoints = {"votes-redis": [("votes-redis-0", True)], "votes-mongo": [("mongo-0", False)]}
    rows, failures = lab_checks.service_table(services, endpoints)
    assert failures == ["Service votes-mongo selects app=votes-mongo but has no ready endpoint"]
    assert rows == [
        ("SERVICE", "TYPE", "MADE BY", "SELECTOR", "READY ENDPOINTS"),
        ("votes-redis", "ClusterIP", "deploy", "app=votes-redis", "votes-redis-0"),
        ("votes-mongo", "headless", "deploy", "app=votes-mongo", "NONE"),
        ("external", "ExternalName", "deploy", "(none)", "NONE"),
    ]


def test_kuberay_made_is_owned_by_a_ray_object_or_labelled_by_the_operator() -> None:
    owned = {"metadata": {"ownerReferences": [{"kind": "RayCluster"}]}}
    labelled = {"metadata": {"labels": {"app.kubernetes.io/created-by": "kuberay-operator"}}}
    ours = {"metadata": {"ownerReferences": [{"kind": "StatefulSet"}], "labels": {"app": "x"}}}
    assert lab_checks.kuberay_made(owned) and lab_checks.kuberay_made(labelled)
    assert not lab_checks.kuberay_made(ours)
    rows, _ = lab_checks.service_table(
        [service("votes-head-svc", None, metadata=owned["metadata"])], {}
    )
    assert rows[1][2] == "kuberay"


def test_selects_needs_every_label_of_the_selector() -> None:
    assert lab_checks.selects({"a": "1", "b": "2"}, {"a": "1", "b": "2", "c": "3"})
    assert not lab_checks.selects({"a": "1", "b": "2"}, {"a": "1"})


def test_probes_are_shown_by_how_they_ask() -> None:
    assert lab_checks.show_probe(None) == "-"
    http = {"httpGet": {"port": 8000, "path": "/-/healthz"}, "periodSeconds": 5}
    assert lab_checks.show_probe(http) == "http :8000/-/healthz (period 5s)"
    assert lab_checks.show_probe({"tcpSocket": {"port": 6379}}) == "tcp :6379 (period 10s)"
    assert lab_checks.show_probe({"exec": {"command": ["ray", "health-check"]}}).startswith(
        "exec ray health-check"
    )


def test_a_pod_is_ready_only_with_its_ready_condition_true() -> None:
    def pod(status: str) -> dict[str, Any]:
        return {"status": {"conditions": [{"type": "Ready", "status": status}]}}

    assert lab_checks.pod_ready(pod("True"))
    assert not lab_checks.pod_ready(pod("False"))
    assert not lab_checks.pod_ready({"status": {}})
