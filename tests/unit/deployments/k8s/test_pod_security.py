"""Pod Security Standards, `restricted`: the namespace enforces it, and every pod template of the
generated manifests (deployments/k8s with the RayService, the optional load generator, the lab
overlay) passes its rules, as do the pods the operators make from our resources (KubeRay's
autoscaler sidecar, Strimzi's brokers and entity operator).

The rules are the profile's (https://kubernetes.io/docs/concepts/security/pod-security-standards/),
those a pod template can break: host namespaces and ports, privileged containers, capabilities,
volume types, privilege escalation, non-root users, seccomp.
"""

from __future__ import annotations

from typing import Any

import pytest

from devkit.k8s_validation import REPO, main_docs, one, render_layout, rendered

LAB_OVERLAY = REPO.root / "deployments" / "k8s-lab" / "overlay"
ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def layouts() -> dict[str, list[dict[str, Any]]]:
    return {
        "deployments/k8s": main_docs(),
        "deployments/k8s/optional": rendered("deployments/k8s/optional"),
        "deployments/k8s-lab/overlay": render_layout(LAB_OVERLAY).docs,
    }


def pod_templates(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Name -> pod spec of every pod template: workloads, Jobs and the RayService's groups."""
    found = {}
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
            found[name] = doc["spec"]["template"]["spec"]
        elif doc["kind"] == "RayService":
            cluster = doc["spec"]["rayClusterConfig"]
            found[f"{name}/head"] = cluster["headGroupSpec"]["template"]["spec"]
            for group in cluster["workerGroupSpecs"]:
                found[f"{name}/{group['groupName']}"] = group["template"]["spec"]
    return found


def container_problems(container: dict[str, Any], pod: dict[str, Any]) -> list[str]:
    context = container.get("securityContext") or {}
    pod_context = pod.get("securityContext") or {}
    name = container["name"]
    problems = []
    if context.get("privileged"):
        problems.append(f"{name}: privileged")
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{name}: allowPrivilegeEscalation is not false")
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        problems.append(f"{name}: capabilities do not drop ALL")
    if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
        problems.append(f"{name}: adds capabilities {capabilities['add']}")
    if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
        problems.append(f"{name}: runAsNonRoot is not true")
    if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
        problems.append(f"{name}: runs as uid 0")
    seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
    if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
        problems.append(f"{name}: no RuntimeDefault (or Localhost) seccomp profile")
    if any(port.get("hostPort") for port in container.get("ports") or []):
        problems.append(f"{name}: a hostPort")
    return problems


def restricted_problems(pod: dict[str, Any]) -> list[str]:
    """What the `restricted` profile refuses in a pod spec (empty: admitted)."""
    problems = [f"{key}: true" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            problems.append(f"volume {volume['name']}: {sorted(kinds)}")
    containers = [*(pod.get("initContainers") or []), *pod["containers"]]
    for container in containers:
        problems += container_problems(container, pod)
    return problems


@pytest.mark.parametrize("layout", ["deployments/k8s", "deployments/k8s-lab/overlay"])
def test_the_namespace_enforces_the_restricted_profile(layout: str) -> None:
    namespace = one(layouts()[layout], "Namespace")
    labels = namespace["metadata"].get("labels") or {}
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted", labels


@pytest.mark.parametrize("layout", sorted(layouts()))
def test_every_pod_template_passes_the_restricted_profile(layout: str) -> None:
    templates = pod_templates(layouts()[layout])
    assert templates
    problems = [
        f"{name}: {problem}"
        for name, pod in templates.items()
        for problem in restricted_problems(pod)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("layout", sorted(layouts()))
def test_every_pod_names_its_non_root_uid(layout: str) -> None:
    """runAsNonRoot alone fails at start for an image whose USER is a name (the Ray image's
    `ray`): the kubelet cannot check a name, so our pods give the number."""
    for name, pod in pod_templates(layouts()[layout]).items():
        uid = (pod.get("securityContext") or {}).get("runAsUser")
        assert isinstance(uid, int) and uid > 0, name


def test_the_checker_refuses_what_the_profile_refuses() -> None:
    pod = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "c",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    assert restricted_problems(pod) == []
    for change in (
        lambda p: p["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
        lambda p: p["containers"][0]["securityContext"]["capabilities"].update(add=["NET_ADMIN"]),
        lambda p: p["securityContext"].pop("runAsNonRoot"),
        lambda p: p["securityContext"].update(runAsUser=0),
        lambda p: p["securityContext"].pop("seccompProfile"),
        lambda p: p.update(hostNetwork=True),
        lambda p: p.update(volumes=[{"name": "h", "hostPath": {"path": "/"}}]),
        lambda p: p.update(initContainers=[{"name": "i"}]),
    ):
        broken = {**pod, "securityContext": dict(pod["securityContext"])}
        broken["containers"] = [
            {
                "name": "c",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ]
        change(broken)
        assert restricted_problems(broken), broken


def test_kuberays_autoscaler_sidecar_is_restricted_too() -> None:
    """KubeRay adds the sidecar with autoscalerOptions.securityContext (its init container
    copies the Ray container's, checked above)."""
    cluster = one(main_docs(), "RayService")["spec"]["rayClusterConfig"]
    if not cluster.get("enableInTreeAutoscaling"):
        pytest.skip("no autoscaler sidecar")
    sidecar = {"name": "autoscaler", **cluster["autoscalerOptions"]}
    head = cluster["headGroupSpec"]["template"]["spec"]
    assert container_problems(sidecar, head) == []


def test_strimzis_pods_are_restricted_too() -> None:
    """Strimzi makes the pods from the KafkaNodePool's and the Kafka's templates: the brokers'
    pod and container, the entity operator's pod and its two containers. Its images run as uid
    1001 (numeric, so runAsNonRoot can be checked)."""
    docs = main_docs()
    pool = one(docs, "KafkaNodePool")["spec"]["template"]
    broker = {"name": "kafka", **pool["kafkaContainer"]}
    assert container_problems(broker, pool["pod"]) == []
    entity = one(docs, "Kafka")["spec"]["entityOperator"]["template"]
    for key in ("topicOperatorContainer", "userOperatorContainer"):
        assert container_problems({"name": key, **entity[key]}, entity["pod"]) == [], key
