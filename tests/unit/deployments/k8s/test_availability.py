"""The RayService survives a node loss and its pods behave: checked on the generated manifests.

- GCS fault tolerance in votes-redis (KubeRay gcsFaultToleranceOptions), as the ACL user ray-gcs;
- 2 VoteIngress replicas at least, one per Ray node, on 2 worker pods at least, spread over nodes;
  the head out of the Serve Service; the differences from `make run` made in one place;
- the Ray token in a Secret of its own;
- /dev/shm with room over the object store, Serve logs on a sidecar's stdout, a termination
  grace period longer than Serve's drain, Grafana's plugin installed before Grafana starts;
- the sizing table of docs/kubernetes.md adds up to the requests in the manifests, upgrade surge
  included.

Offline (devkit/k8s_validation/); Ray Serve's own constants are read from the installed Ray.
"""

from __future__ import annotations

import copy
import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from deployments.manifests.kustomize import parse_env_file
from deployments.manifests.names import RAY_AUTH_TOKEN_KEY, SECRET
from deployments.manifests.overrides import KUBERNETES_OVERRIDES, SERVE_START_ANNOTATION
from deployments.manifests.pods import LOG_SIDECAR, quantity_bytes
from deployments.manifests.rayservice import rayservice
from deployments.manifests.shutdown import (
    SERVE_DEFAULT_GRACEFUL_SHUTDOWN_S,
    SERVE_DIRECT_INGRESS_DRAIN_S,
    SERVE_DIRECT_INGRESS_SHUTDOWN_BUFFER_S,
)
from deployments.manifests.sources import load_config, ray_version
from devkit import k8s_validation as kv
from devkit.k8s_validation import REPO, head_container, main_docs, one, worker_containers
from tests.unit.deployments.k8s.test_kuberay_labels import kuberay_pod_labels, ray_pods, selected


def _rayservice() -> dict[str, Any]:
    return one(main_docs(), "RayService")


def _cluster() -> dict[str, Any]:
    return _rayservice()["spec"]["rayClusterConfig"]


def _serve_config() -> dict[str, Any]:
    return yaml.safe_load(_rayservice()["spec"]["serveConfigV2"])


def _deployment(config: dict[str, Any], name: str) -> dict[str, Any]:
    (app,) = config["applications"]
    return next(d for d in app["deployments"] if d["name"] == name)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


# ---------------------------------------------------------------------------------------------
# No single point of failure
# ---------------------------------------------------------------------------------------------


def test_gcs_fault_tolerance_uses_votes_redis_as_ray_gcs() -> None:
    docs = main_docs()
    options = _cluster()["gcsFaultToleranceOptions"]
    host, _, port = options["redisAddress"].partition(":")
    service = one(docs, "Service", host)
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    assert options["redisUsername"] == {"value": "ray-gcs"}
    ref = options["redisPassword"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": SECRET, "key": "REDIS_GCS_PASSWORD"}
    template = parse_env_file(REPO.k8s / "secrets.env.example")
    assert ref["key"] in template, "secrets.env.example must define the ray-gcs password"
    # KubeRay's default (the RayCluster's UID) keeps an upgrade's new cluster off the old state.
    assert "externalStorageNamespace" not in options
    # What KubeRay refuses next to gcsFaultToleranceOptions (ValidateRayClusterSpec, v1.7.0).
    head_env = _env(head_container(_rayservice()))
    for name in ("RAY_REDIS_ADDRESS", "REDIS_PASSWORD", "REDIS_USERNAME"):
        assert name not in head_env
    start = _cluster()["headGroupSpec"]["rayStartParams"]
    assert "redis-password" not in start and "redis-username" not in start


def test_the_head_takes_no_traffic() -> None:
    assert _rayservice()["spec"]["excludeHeadPodFromServeSvc"] is True


def test_two_ingress_replicas_on_two_nodes_on_kubernetes_one_locally() -> None:
    local = load_config(REPO.config)
    local_ingress = _deployment(local, "VoteIngress")
    assert local_ingress["autoscaling_config"]["min_replicas"] == 1, "make run keeps 1 replica"
    assert "max_replicas_per_node" not in local_ingress

    ingress = _deployment(_serve_config(), "VoteIngress")
    autoscaling = ingress["autoscaling_config"]
    assert autoscaling["min_replicas"] >= 2
    assert ingress["max_replicas_per_node"] == 1
    (group,) = _cluster()["workerGroupSpecs"]
    # One ingress replica per node and none on the head (num-cpus 0): every replica Serve may
    # want needs a worker pod of its own, which the Ray autoscaler must be allowed to start.
    assert _cluster()["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert group["minReplicas"] >= autoscaling["min_replicas"]
    assert group["maxReplicas"] >= autoscaling["max_replicas"]
    # Every difference from config.yaml comes from KUBERNETES_OVERRIDES (one place).
    assert KUBERNETES_OVERRIDES["VoteIngress"]["min_replicas"] >= 2


def test_a_worker_pod_fits_an_ingress_and_a_persister_replica() -> None:
    config = _serve_config()
    need = sum(
        _deployment(config, name)["ray_actor_options"]["num_cpus"]
        for name in ("VoteIngress", "VotePersister")
    )
    for container in worker_containers(_rayservice()):
        assert float(container["resources"]["limits"]["cpu"]) >= need


def test_worker_pods_spread_over_nodes_and_the_head_is_not_counted() -> None:
    rayservice_doc = _rayservice()
    (group,) = rayservice_doc["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    (spread,) = group["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["maxSkew"] == 1 and spread["whenUnsatisfiable"] == "DoNotSchedule"
    assert spread["matchLabelKeys"] == ["ray.io/cluster"]
    pods = ray_pods(rayservice_doc)
    assert selected(spread["labelSelector"]["matchLabels"], pods) == [group["groupName"]]


def test_the_workers_disruption_budget_selects_the_worker_pods() -> None:
    """deployments/k8s/disruption-budgets.yaml (the other half of this change) keeps one worker
    pod up during voluntary disruptions; it must select worker pods, never the head."""
    rayservice_doc = _rayservice()
    pods = ray_pods(rayservice_doc)
    budgets = [d for d in main_docs() if d["kind"] == "PodDisruptionBudget"]
    ray_budgets = [
        b
        for b in budgets
        if any(
            k.startswith("ray.io/") or v.startswith("ray-")
            for k, v in (b["spec"]["selector"].get("matchLabels") or {}).items()
        )
    ]
    if not (REPO.k8s / "disruption-budgets.yaml").is_file():
        return  # not written yet
    assert ray_budgets, "no PodDisruptionBudget for the Ray workers"
    for budget in ray_budgets:
        chosen = selected(budget["spec"]["selector"]["matchLabels"], pods)
        assert chosen and "head" not in chosen, f"{kv.name_of(budget)} selects {chosen}"
        if "minAvailable" in budget["spec"]:
            (group,) = rayservice_doc["spec"]["rayClusterConfig"]["workerGroupSpecs"]
            assert budget["spec"]["minAvailable"] < group["minReplicas"], "would block drains"


# ---------------------------------------------------------------------------------------------
# The Ray token
# ---------------------------------------------------------------------------------------------


def test_the_ray_token_has_a_secret_of_its_own() -> None:
    docs = main_docs()
    auth = _cluster()["authOptions"]
    assert auth == {"mode": "token", "secretName": "votes-ray-token"}
    token = one(docs, "Secret", "votes-ray-token")
    assert set(token["data"]) == {RAY_AUTH_TOKEN_KEY}
    assert RAY_AUTH_TOKEN_KEY not in one(docs, "Secret", SECRET)["data"]


# ---------------------------------------------------------------------------------------------
# Pods that behave
# ---------------------------------------------------------------------------------------------


def test_serve_defaults_the_manifests_rely_on_are_rays() -> None:
    from ray.serve._private import constants

    assert constants.RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S == SERVE_DIRECT_INGRESS_DRAIN_S
    assert (
        constants.RAY_SERVE_DIRECT_INGRESS_SHUTDOWN_BUFFER_S
        == SERVE_DIRECT_INGRESS_SHUTDOWN_BUFFER_S
    )
    assert constants.DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S == SERVE_DEFAULT_GRACEFUL_SHUTDOWN_S


def test_termination_grace_outlasts_the_drain_and_graceful_shutdown() -> None:
    config = _serve_config()
    graceful = max(
        d.get("graceful_shutdown_timeout_s", SERVE_DEFAULT_GRACEFUL_SHUTDOWN_S)
        for d in config["applications"][0]["deployments"]
    )
    ingress_floor = SERVE_DIRECT_INGRESS_DRAIN_S + SERVE_DIRECT_INGRESS_SHUTDOWN_BUFFER_S
    drain_and_shutdown = SERVE_DIRECT_INGRESS_DRAIN_S + max(graceful, ingress_floor)
    cluster = _cluster()
    templates = [cluster["headGroupSpec"]["template"]]
    templates += [g["template"] for g in cluster["workerGroupSpecs"]]
    for template in templates:
        assert template["spec"]["terminationGracePeriodSeconds"] > drain_and_shutdown
    for container in worker_containers(_rayservice()):
        script = container["lifecycle"]["preStop"]["exec"]["command"][-1]
        assert script.startswith("ray drain-node ")
        assert f"--deadline-remaining-seconds {drain_and_shutdown} " in script
        assert f"sleep {drain_and_shutdown};" in script and script.rstrip().split(";")[
            -1
        ].strip().startswith("ray stop")
        # The hook and `ray stop` end before Kubernetes kills the pod.
        stop_grace = int(re.search(r"--grace-period (\d+)", script).group(1))
        grace = cluster["workerGroupSpecs"][0]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert drain_and_shutdown + stop_grace < grace


# /dev/shm over the object store, at least (deployments/manifests/pods.py, SHM_HEADROOM): the store
# fills its own size exactly, and a full tmpfs is a SIGBUS, not an error.
SHM_MARGIN = 0.2


def shm_and_store(docs: list[dict[str, Any]]) -> list[tuple[str, int, int, int]]:
    """(group, /dev/shm sizeLimit, object-store-memory, memory limit) of each Ray pod template."""
    cluster = one(docs, "RayService")["spec"]["rayClusterConfig"]
    found = []
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        spec = group["template"]["spec"]
        container = spec["containers"][0]
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
        (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
        assert volume["emptyDir"]["medium"] == "Memory"
        found.append(
            (
                group.get("groupName", "head"),
                quantity_bytes(volume["emptyDir"]["sizeLimit"]),
                int(group["rayStartParams"]["object-store-memory"]),
                quantity_bytes(container["resources"]["limits"]["memory"]),
            )
        )
    return found


def test_dev_shm_is_memory_with_room_over_the_object_store() -> None:
    lab = kv.render_layout(REPO.root / "deployments" / "k8s-lab" / "overlay").docs
    for group, shm, store, limit in shm_and_store(main_docs()) + shm_and_store(lab):
        assert shm >= store * (1 + SHM_MARGIN), f"{group}: /dev/shm {shm} for a store of {store}"
        # tmpfs pages count against the container's memory limit: leave room for the processes.
        assert store <= limit // 3, group
        assert shm <= limit // 2, group


def _ray_pod_specs() -> dict[str, dict[str, Any]]:
    cluster = _cluster()
    specs = {"head": cluster["headGroupSpec"]["template"]["spec"]}
    for group in cluster["workerGroupSpecs"]:
        specs[group["groupName"]] = group["template"]["spec"]
    return specs


def test_serve_logs_reach_kubectl_logs_through_a_sidecar() -> None:
    """Serve writes its logs (controller, proxies, replicas, and with RAY_SERVE_LOG_TO_STDERR=0
    a replica's prints) to files under /tmp/ray; stderr would be the Ray worker process's, another
    file there. A sidecar of each Ray pod shares /tmp/ray and follows them on its stdout."""
    for role, spec in _ray_pod_specs().items():
        ray, *others = spec["containers"]
        assert ray["name"].startswith("ray-"), f"{role}: KubeRay takes the first container"
        env = _env(ray)
        assert env["RAY_SERVE_LOG_TO_STDERR"] == "0", role
        assert env.get("RAY_SERVE_THROUGHPUT_OPTIMIZED") == "1", role
        (sidecar,) = [c for c in others if c["name"] == LOG_SIDECAR]
        assert sidecar["image"] == ray["image"], "an image we build already"
        shared = {m["name"]: m["mountPath"] for m in ray["volumeMounts"]}
        (mount,) = sidecar["volumeMounts"]
        assert shared.get(mount["name"]) == mount["mountPath"] == "/tmp/ray", role
        assert sidecar["command"][-1] == mount["mountPath"], "the script's folder argument"
        assert "session_latest/logs/serve/*.log" in sidecar["command"][2], role


def _sidecar_command() -> list[str]:
    (sidecar,) = [c for c in _ray_pod_specs()["head"]["containers"] if c["name"] == LOG_SIDECAR]
    return list(sidecar["command"])


def test_the_sidecar_follows_replica_logs_that_appear_later_and_rotate(tmp_path: Path) -> None:
    """The sidecar's own script, run by sh on a folder laid out as Ray's session: a replica's log
    file made after it starts is followed from its first line, and through a rotation."""
    command = _sidecar_command()
    command[-1] = str(tmp_path)
    serve = tmp_path / "session_2026-01-01_00-00-00_000000_1" / "logs" / "serve"
    serve.mkdir(parents=True)
    (tmp_path / "session_latest").symlink_to(serve.parents[1].name)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, start_new_session=True, bufsize=1
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout or []], daemon=True
    ).start()

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if text in lines.get(timeout=0.5):
                    return
            except queue.Empty:
                continue
        raise AssertionError(f"the sidecar never printed {text!r}")

    try:
        replica = serve / "replica_votes_VoteIngress_abc123.log"
        replica.write_text("INFO replica started\n")
        wait_for("replica started")
        with replica.open("a") as log:
            log.write("INFO vote accepted\n")
        wait_for("vote accepted")
        replica.rename(replica.with_name(replica.name + ".1"))  # RotatingFileHandler's rollover
        replica.write_text("INFO after rotation\n")
        wait_for("after rotation")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


def test_grafana_has_its_redis_plugin_before_it_starts() -> None:
    grafana = one(main_docs(), "Deployment", "votes-grafana")["spec"]["template"]["spec"]
    (main,) = grafana["containers"]
    (init,) = grafana["initContainers"]
    assert init["command"][-3:] == ["plugins", "install", "redis-datasource"]
    plugins_dir = init["command"][init["command"].index("--pluginsDir") + 1]
    (init_mount,) = init["volumeMounts"]
    main_mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    assert main_mounts[init_mount["name"]] == init_mount["mountPath"]
    # Grafana's default plugins directory is <data>/plugins.
    assert plugins_dir == init_mount["mountPath"] + "/plugins"
    assert init["image"] == main["image"]
    env = _env(main)
    assert "GF_PLUGINS_PREINSTALL" not in env, "an asynchronous download on every start"
    assert env["GF_PLUGINS_PREINSTALL_DISABLED"] == "true"


# ---------------------------------------------------------------------------------------------
# Sizing: docs/kubernetes.md adds up to the manifests
# ---------------------------------------------------------------------------------------------


def _cpu(quantity: str | float) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _gib(quantity: str) -> float:
    return quantity_bytes(str(quantity)) / 2**30


def _pod_requests(spec: dict[str, Any]) -> tuple[float, float]:
    """Kubernetes' effective pod request: the containers' sum, or an init container's if larger."""

    def of(containers: list[dict[str, Any]]) -> list[tuple[float, float]]:
        found = []
        for c in containers:
            requests = (c.get("resources") or {}).get("requests") or {}
            found.append((_cpu(requests.get("cpu", 0)), _gib(requests.get("memory", "0"))))
        return found

    main = of(spec["containers"])
    init = of(spec.get("initContainers") or [])
    cpu = max([sum(c for c, _ in main), *[c for c, _ in init]])
    memory = max([sum(m for _, m in main), *[m for _, m in init]])
    return cpu, memory


def manifest_sizing() -> dict[str, tuple[int, float, float]]:
    """Part -> (pods, CPU per pod, GiB per pod) from the manifests; Ray workers at minReplicas."""
    docs = main_docs()
    cluster = _cluster()
    head_cpu, head_mem = _pod_requests(cluster["headGroupSpec"]["template"]["spec"])
    autoscaler = cluster["autoscalerOptions"]["resources"]["requests"]
    parts = {
        "ray-head": (1, head_cpu + _cpu(autoscaler["cpu"]), head_mem + _gib(autoscaler["memory"]))
    }
    (group,) = cluster["workerGroupSpecs"]
    parts["ray-worker"] = (group["minReplicas"], *_pod_requests(group["template"]["spec"]))
    pool = one(docs, "KafkaNodePool")
    requests = pool["spec"]["resources"]["requests"]
    parts["kafka"] = (pool["spec"]["replicas"], _cpu(requests["cpu"]), _gib(requests["memory"]))
    for doc in docs:
        if doc["kind"] in ("StatefulSet", "Deployment"):
            part = doc["metadata"]["name"].removeprefix("votes-")
            spec = doc["spec"]["template"]["spec"]
            parts[part] = (doc["spec"].get("replicas", 1), *_pod_requests(spec))
    return parts


def docs_sizing() -> dict[str, tuple[int, float, float]]:
    """The rows of the sizing table in docs/kubernetes.md: | `part` | pods | CPU | memory GiB |"""
    text = (REPO.root / "docs" / "kubernetes.md").read_text()
    section = text.split("<!-- sizing table -->", 2)
    assert len(section) == 3, "docs/kubernetes.md: the sizing table between its markers"
    rows = {}
    for line in section[1].splitlines():
        found = re.match(r"\|\s*`([a-z-]+)`\s*\|\s*(\d+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+) GiB", line)
        if found:
            rows[found.group(1)] = (
                int(found.group(2)),
                float(found.group(3)),
                float(found.group(4)),
            )
    totals = re.search(
        r"\|\s*\*\*total\*\*\s*\|\s*\*\*(\d+)\*\*\s*\|\s*\*\*([\d.]+)\*\*\s*\|\s*\*\*([\d.]+) GiB",
        section[1],
    )
    assert totals, "docs/kubernetes.md: the sizing table's **total** row"
    rows["total"] = (int(totals.group(1)), float(totals.group(2)), float(totals.group(3)))
    surge = re.search(
        r"\|\s*\*\*surge\*\*\s*\|\s*\*\*\+(\d+)\*\*\s*\|\s*\*\*\+([\d.]+)\*\*\s*\|"
        r"\s*\*\*\+([\d.]+) GiB",
        section[1],
    )
    assert surge, "docs/kubernetes.md: the sizing table's **surge** row (a second Ray cluster)"
    rows["surge"] = (int(surge.group(1)), float(surge.group(2)), float(surge.group(3)))
    return rows


def test_the_sizing_in_the_docs_adds_up_to_the_manifests() -> None:
    wanted = manifest_sizing()
    written = docs_sizing()
    total = written.pop("total")
    surge = written.pop("surge")
    assert set(written) == set(wanted), "every part with requests, and only those"
    for part, (pods, cpu, memory) in wanted.items():
        doc_pods, doc_cpu, doc_memory = written[part]
        assert doc_pods == pods, part
        assert abs(doc_cpu - pods * cpu) < 0.01, f"{part}: CPU {doc_cpu} != {pods} x {cpu}"
        assert abs(doc_memory - pods * memory) < 0.01, f"{part}: {doc_memory} GiB"
    assert total[0] == sum(p for p, _, _ in wanted.values())
    assert abs(total[1] - sum(p * c for p, c, _ in wanted.values())) < 0.01
    assert abs(total[2] - sum(p * m for p, _, m in wanted.values())) < 0.01
    # A rayClusterConfig change runs a second Ray cluster (head and minReplicas workers) beside
    # the first until KubeRay switches the Service over: the cluster needs room for both.
    ray = [wanted["ray-head"], wanted["ray-worker"]]
    assert surge[0] == sum(p for p, _, _ in ray), "surge: pods of a second Ray cluster"
    assert abs(surge[1] - sum(p * c for p, c, _ in ray)) < 0.01, f"surge CPU {surge[1]}"
    assert abs(surge[2] - sum(p * m for p, _, m in ray)) < 0.01, f"surge memory {surge[2]}"


def test_kuberay_labels_helper_models_worker_pods() -> None:
    """The spread and the budget rely on ray.io/node-type=worker, which KubeRay always sets."""
    labels = kuberay_pod_labels(
        {"app.kubernetes.io/component": "ray-worker"}, "worker", "w", "true"
    )
    assert labels["ray.io/node-type"] == "worker"


def test_start_only_serve_options_roll_out_a_new_ray_cluster() -> None:
    """serveConfigV2 changes reach the running Serve app in place, except the keys Serve reads only
    at start: for those the head template's annotation changes, and KubeRay builds a new cluster
    (it hashes rayClusterConfig)."""
    config = load_config(REPO.config)
    image, ray = "r.example/v:1", ray_version(REPO.pyproject)
    base = rayservice(config, image=image, ray_version=ray)

    def changed(change: Any) -> dict[str, Any]:
        other = copy.deepcopy(config)
        change(other)
        return rayservice(other, image=image, ray_version=ray)

    in_place = changed(
        lambda c: c["applications"][0]["deployments"][0]["autoscaling_config"].update(
            max_replicas=3
        )
    )
    assert in_place["spec"]["serveConfigV2"] != base["spec"]["serveConfigV2"]
    assert in_place["spec"]["rayClusterConfig"] == base["spec"]["rayClusterConfig"]
    for change in (
        lambda c: c["grpc_options"].update(request_timeout_s=60),
        lambda c: c["http_options"].update(request_timeout_s=60),
        lambda c: c.update(proxy_location="HeadOnly"),
    ):
        new = changed(change)
        assert new["spec"]["rayClusterConfig"] != base["spec"]["rayClusterConfig"]
        template = new["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
        assert SERVE_START_ANNOTATION in template["metadata"]["annotations"]
