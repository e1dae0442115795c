"""Every Service KubeRay makes for the RayService selects its Ray pods.

KubeRay labels each Ray pod with its own defaults, then with the pod template's labels on top (all
but ray.io/cluster, ray.io/node-type and ray.io/group may be overridden), and its Services select on
some of those defaults. A template label that overrides one of them leaves a Service without
endpoints. Seen with KubeRay v1.6.2 on a real API server: `app.kubernetes.io/name: votes` on the
head template left `votes-head-svc` (the RayService's head Service, which always selects
`app.kubernetes.io/name: kuberay`) selecting no pod, so `kubectl port-forward svc/votes-head-svc`
failed.

What this file models was read in KubeRay v1.6.2 (the same in v1.7.0, the CRDs we validate with):
- ray-operator/controllers/ray/common/pod.go: `labelPod` (the default pod labels, and which of them
  a template may override); `BuildPod` (`ray.io/serve`: "true" on workers, "false" on the head until
  the RayService controller sees the head's Serve proxy healthy, `updateHeadPodServeLabel`);
- ray-operator/controllers/ray/common/service.go: `HeadServiceLabels` and `BuildServiceForHeadPod`
  (head Service selector), `BuildHeadServiceForRayService` (`<name>-head-svc`: that selector with no
  labels from the template), `BuildServeService` (`<name>-serve-svc`);
- ray-operator/controllers/ray/raycluster_controller.go: `reconcileHeadService` (the cluster's own
  head Service takes `app.kubernetes.io/name` from the head template when it sets one);
- ray-operator/controllers/ray/utils/constant.go: the label keys and values.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml

from deployments.manifests.names import RAYSERVICE_NAME
from deployments.manifests.rayservice import rayservice_of
from devkit import k8s_validation as kv

KUBERAY_VERSION = "v1.6.2"
K8S = kv.REPO.k8s
# KubeRay names the RayCluster of a RayService <RayService name>-<5 random characters>.
CLUSTER = f"{RAYSERVICE_NAME}-x7k2q"
# labelPod: the keys a pod template cannot override (KubeRay drops the template's value).
NOT_OVERRIDABLE = frozenset({"ray.io/cluster", "ray.io/node-type", "ray.io/group"})
# The labels KubeRay sets on Ray pods and what selects on each; none may come from a template.
KUBERAY_POD_LABELS = {
    "ray.io/cluster": "every KubeRay Service",
    "ray.io/node-type": "the head Services; kubectl -l ray.io/node-type=head in the docs",
    "ray.io/identifier": "the head Services",
    "app.kubernetes.io/name": "the head Services (`kuberay`)",
    "app.kubernetes.io/created-by": "the head Services (`kuberay-operator`)",
    "ray.io/serve": "the Serve Service (KubeRay sets it on the running pod)",
    "ray.io/is-ray-node": "our Prometheus scrape config; kubectl -l in the docs",
    "ray.io/group": "KubeRay's own pod lookups per worker group",
}


def kuberay_pod_labels(
    template_labels: dict[str, str], node_type: str, group: str, serve: str
) -> dict[str, str]:
    """The labels KubeRay gives a Ray pod (labelPod, then BuildPod's ray.io/serve)."""
    labels = {
        "ray.io/is-ray-node": "yes",
        "ray.io/cluster": CLUSTER,
        "ray.io/node-type": node_type,
        "ray.io/group": group,
        "ray.io/identifier": f"{CLUSTER}-{node_type}",
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    labels |= {k: v for k, v in template_labels.items() if k not in NOT_OVERRIDABLE}
    labels["ray.io/serve"] = serve
    return labels


def head_service_selector(
    head_template_labels: dict[str, str], *, of_rayservice: bool
) -> dict[str, str]:
    """HeadServiceLabels, with the head template's app name for the cluster's own head Service."""
    selector = {
        "ray.io/cluster": CLUSTER,
        "ray.io/node-type": "head",
        "ray.io/identifier": f"{CLUSTER}-head",
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    if not of_rayservice and "app.kubernetes.io/name" in head_template_labels:
        selector["app.kubernetes.io/name"] = head_template_labels["app.kubernetes.io/name"]
    return selector


def template_labels(template: dict[str, Any]) -> dict[str, str]:
    return dict((template.get("metadata") or {}).get("labels") or {})


def ray_pods(rayservice: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Pod role -> labels, each pod running with a healthy Serve proxy."""
    cluster = rayservice["spec"]["rayClusterConfig"]
    head = template_labels(cluster["headGroupSpec"]["template"])
    pods = {"head": kuberay_pod_labels(head, "head", "headgroup", serve="true")}
    for group in cluster["workerGroupSpecs"]:
        labels = template_labels(group["template"])
        pods[group["groupName"]] = kuberay_pod_labels(
            labels, "worker", group["groupName"], serve="true"
        )
    return pods


def kuberay_services(rayservice: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Service name -> selector, for every Service KubeRay makes for this RayService."""
    name = rayservice["metadata"]["name"]
    head = template_labels(rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"])
    return {
        f"{CLUSTER}-head-svc": head_service_selector(head, of_rayservice=False),
        f"{name}-head-svc": head_service_selector(head, of_rayservice=True),
        f"{name}-serve-svc": {"ray.io/cluster": CLUSTER, "ray.io/serve": "true"},
    }


def selected(selector: dict[str, str], pods: dict[str, dict[str, str]]) -> list[str]:
    return [role for role, labels in pods.items() if selector.items() <= labels.items()]


def generated_rayservice() -> dict[str, Any]:
    return rayservice_of(kv.REPO)


def expected_endpoints(rayservice: dict[str, Any]) -> dict[str, list[str]]:
    name = rayservice["metadata"]["name"]
    workers = [g["groupName"] for g in rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]]
    return {
        f"{CLUSTER}-head-svc": ["head"],
        f"{name}-head-svc": ["head"],
        f"{name}-serve-svc": ["head", *workers],
    }


def test_no_pod_template_sets_a_label_kuberay_sets() -> None:
    cluster = generated_rayservice()["spec"]["rayClusterConfig"]
    templates = {"head": cluster["headGroupSpec"]["template"]}
    templates |= {g["groupName"]: g["template"] for g in cluster["workerGroupSpecs"]}
    for role, template in templates.items():
        labels = template_labels(template)
        clashes = {key: KUBERAY_POD_LABELS[key] for key in labels if key in KUBERAY_POD_LABELS}
        assert not clashes, (
            f"the {role} pod template sets labels KubeRay {KUBERAY_VERSION} sets itself; "
            f"overriding them breaks what selects on them: {clashes}"
        )
        assert labels["app.kubernetes.io/part-of"] == "votes"
        component = "ray-head" if role == "head" else "ray-worker"
        assert labels["app.kubernetes.io/component"] == component


def test_every_service_kuberay_makes_selects_its_pods() -> None:
    rayservice = generated_rayservice()
    pods = ray_pods(rayservice)
    services = kuberay_services(rayservice)
    for service, wanted in expected_endpoints(rayservice).items():
        found = selected(services[service], pods)
        assert found == wanted, f"{service} (selector {services[service]}) selects {found}"


def test_the_check_sees_the_override_found_on_a_real_cluster() -> None:
    """The head template's own app name, as it was: the RayService's head Service selects no pod."""
    rayservice = copy.deepcopy(generated_rayservice())
    head = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
    head["metadata"]["labels"]["app.kubernetes.io/name"] = "votes"
    pods = ray_pods(rayservice)
    services = kuberay_services(rayservice)
    assert selected(services[f"{RAYSERVICE_NAME}-head-svc"], pods) == []
    assert selected(services[f"{CLUSTER}-head-svc"], pods) == ["head"]


def test_a_head_pod_whose_serve_proxy_is_unhealthy_leaves_the_serve_service() -> None:
    rayservice = generated_rayservice()
    head = template_labels(rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"])
    pods = ray_pods(rayservice)
    pods["head"] = kuberay_pod_labels(head, "head", "headgroup", serve="false")
    services = kuberay_services(rayservice)
    assert "head" not in selected(services[f"{RAYSERVICE_NAME}-serve-svc"], pods)
    assert selected(services[f"{RAYSERVICE_NAME}-head-svc"], pods) == ["head"]


# ---------------------------------------------------------------------------------------------
# Our own selectors of Ray pods (deployments/k8s)
# ---------------------------------------------------------------------------------------------


def label_selectors(doc: dict[str, Any]) -> list[dict[str, str]]:
    """The pod label selectors of a Service, NetworkPolicy, PodMonitor or ServiceMonitor."""
    spec = doc.get("spec") or {}
    kind = doc["kind"]
    if kind == "Service":
        return [spec["selector"]] if spec.get("selector") else []
    if kind == "NetworkPolicy":
        peers = [spec.get("podSelector") or {}]
        for rule in (spec.get("ingress") or []) + (spec.get("egress") or []):
            peers += [
                peer["podSelector"]
                for peer in (rule.get("from") or []) + (rule.get("to") or [])
                if "podSelector" in peer
            ]
        return [p["matchLabels"] for p in peers if p.get("matchLabels")]
    if kind in ("PodMonitor", "ServiceMonitor"):
        match_labels = (spec.get("selector") or {}).get("matchLabels")
        return [match_labels] if match_labels else []
    return []


def targets_ray_pods(selector: dict[str, str]) -> bool:
    return any(key.startswith("ray.io/") for key in selector) or selector.get(
        "app.kubernetes.io/component", ""
    ).startswith("ray-")


def test_our_selectors_of_ray_pods_select_them() -> None:
    """A Service, NetworkPolicy or pod monitor of ours aimed at Ray pods (none today) finds them."""
    docs = kv.render_layout(K8S).docs
    pods = ray_pods(next(d for d in docs if d["kind"] == "RayService"))
    for doc in docs:
        for selector in label_selectors(doc):
            if targets_ray_pods(selector):
                assert selected(selector, pods), f"{kv.name_of(doc)}: {selector} selects no Ray pod"


def prometheus_label(key: str) -> str:
    """A pod label as Prometheus' Kubernetes discovery names it."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


def test_prometheus_keeps_every_ray_pod() -> None:
    docs = kv.render_layout(K8S).docs
    config_map = next(
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "votes-prometheus-config"
    )
    (job,) = [
        j
        for j in yaml.safe_load(config_map["data"]["prometheus.yml"])["scrape_configs"]
        if j["job_name"] == "ray"
    ]
    keep_on_pod_labels = [
        rule
        for rule in job["relabel_configs"]
        if rule.get("action") == "keep"
        and all(s.startswith("__meta_kubernetes_pod_label_") for s in rule["source_labels"])
    ]
    assert keep_on_pod_labels, "the ray job no longer selects Ray pods by label"
    pods = ray_pods(next(d for d in docs if d["kind"] == "RayService"))
    for role, labels in pods.items():
        discovered = {prometheus_label(k): v for k, v in labels.items()}
        for rule in keep_on_pod_labels:
            value = rule.get("separator", ";").join(
                discovered.get(s, "") for s in rule["source_labels"]
            )
            assert re.fullmatch(rule["regex"], value), f"Prometheus drops the {role} pod: {rule}"
