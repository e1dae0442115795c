"""The Ray head and worker pod templates of the RayService: containers, env, sizes, shutdown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deployments.manifests.names import (
    CONFIG_MAP,
    GRAFANA_IFRAME_URL,
    GRAFANA_URL,
    KAFKA_ENV,
    KAFKA_USER_PASSWORD_KEY,
    KAFKA_USER_SECRET,
    PROMETHEUS_URL,
    RAY_POD_LABELS,
    SECRET,
    SECRET_ENV_KEYS,
    SERVE_GRPC_PORT_NAME,
    SERVE_PORT_NAME,
)
from deployments.manifests.shutdown import RAY_STOP_GRACE_S, drain_budget_s
from deployments.manifests.sources import serve_ports
from serve_app.serve_env import SERVE_ENV

# Two worker pods at least, on two nodes (topology spread in pod_template): each carries one
# VoteIngress replica, so losing a node leaves one accepting votes (docs/kubernetes.md,
# "Availability").
WORKER_MIN_REPLICAS = 2
WORKER_MAX_REPLICAS = 4

# Pod sizes (requests = limits) and the Ray object store in each; /dev/shm is a memory-backed
# emptyDir a little larger than the object store (shm_size), and counts against the container's
# memory limit.
HEAD_CPU, HEAD_MEMORY, HEAD_OBJECT_STORE = "1", "3Gi", "512Mi"
WORKER_CPU, WORKER_MEMORY, WORKER_OBJECT_STORE = "2", "4Gi", "1Gi"
AUTOSCALER_CPU, AUTOSCALER_MEMORY = "500m", "512Mi"


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity with a binary suffix (or none) in bytes."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


# /dev/shm over the object store: the store's file takes exactly its size, and anything else
# writing to /dev/shm (Python's multiprocessing in a replica, a library's shared memory) must not
# fill the tmpfs, where a write past the limit is a SIGBUS in whichever process touches it next.
SHM_HEADROOM = 0.25


def shm_size(object_store_bytes: int) -> str:
    """The sizeLimit of /dev/shm for an object store of that many bytes (SHM_HEADROOM over it)."""
    return f"{int(object_store_bytes * (1 + SHM_HEADROOM)) // 2**20}Mi"


def ray_container(
    name: str,
    image: str,
    config: Mapping[str, Any],
    *,
    head: bool,
    cpu: str,
    memory: str,
) -> dict[str, Any]:
    http_port, grpc_port = serve_ports(config)
    ports = []
    if head:
        ports += [
            {"name": "gcs-server", "containerPort": 6379},
            {"name": "dashboard", "containerPort": 8265},
            {"name": "client", "containerPort": 10001},
        ]
    ports += [
        {"name": SERVE_PORT_NAME, "containerPort": http_port},
        {"name": SERVE_GRPC_PORT_NAME, "containerPort": grpc_port},
        {"name": "metrics", "containerPort": 8080},
    ]
    if head:
        # Autoscaler and dashboard metrics (Ray's defaults), declared so Prometheus finds them.
        ports += [
            {"name": "as-metrics", "containerPort": 44217},
            {"name": "dash-metrics", "containerPort": 44227},
        ]
    env: list[dict[str, Any]] = [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}
        for key in SECRET_ENV_KEYS
    ]
    # Kafka as the KafkaUser votes-app over SCRAM-SHA-512 (env wins over the ConfigMap's envFrom).
    env += [{"name": key, "value": value} for key, value in KAFKA_ENV.items()]
    env.append(
        {
            "name": "VOTES_KAFKA_SASL_PASSWORD",
            "valueFrom": {
                "secretKeyRef": {"name": KAFKA_USER_SECRET, "key": KAFKA_USER_PASSWORD_KEY}
            },
        }
    )
    # Serve reads these from its processes' environment, not from serveConfigV2 (HAProxy direct
    # ingress, the gRPC message size limit): the same list as `make run` and the tests.
    env += [{"name": name, "value": value} for name, value in SERVE_ENV.items()]
    # Serve's logs in their files only (what RAY_SERVE_THROUGHPUT_OPTIMIZED makes the default):
    # stderr would be the Ray worker process's, a file under /tmp/ray too, never `kubectl logs`.
    # With it off a replica's print() and stderr go to its log file as well; the sidecar
    # `serve-logs` (serve_logs_container) copies those files to its own stdout.
    env.append({"name": "RAY_SERVE_LOG_TO_STDERR", "value": "0"})
    if head:
        env += [
            {"name": "RAY_GRAFANA_HOST", "value": GRAFANA_URL},
            {"name": "RAY_PROMETHEUS_HOST", "value": PROMETHEUS_URL},
            {"name": "RAY_GRAFANA_IFRAME_HOST", "value": GRAFANA_IFRAME_URL},
        ]
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": restricted_container(),
        "ports": ports,
        "envFrom": [{"configMapRef": {"name": CONFIG_MAP}}],
        "env": env,
        # Requests equal limits, as Ray recommends: Ray sizes itself from the limits.
        "resources": {
            "requests": {"cpu": cpu, "memory": memory},
            "limits": {"cpu": cpu, "memory": memory},
        },
        # The object store's shared memory (KubeRay would mount one as large as the memory limit),
        # and Ray's session folder, shared with the log sidecar.
        "volumeMounts": [
            {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
            {"name": RAY_TMP_VOLUME, "mountPath": RAY_TMP},
        ],
    }
    if not head:
        # Leave the cluster cleanly when the pod is deleted (node drain, eviction, scale-in):
        # tell Ray the node is going, so Serve starts its replicas elsewhere and lets these drain
        # (HAProxy and the Gateway stop sending to them); wait for that, then stop Ray.
        budget = drain_budget_s(config)
        script = (
            "ray drain-node --reason DRAIN_NODE_REASON_PREEMPTION"
            " --reason-message 'pod terminating'"
            f" --deadline-remaining-seconds {budget} || true;"
            f" sleep {budget}; ray stop --grace-period {RAY_STOP_GRACE_S}"
        )
        container["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/sh", "-c", script]}}}
    return container


SHM_VOLUME = "shared-mem"
RAY_TMP_VOLUME, RAY_TMP = "ray-tmp", "/tmp/ray"
LOG_SIDECAR = "serve-logs"
LOG_SIDECAR_CPU, LOG_SIDECAR_MEMORY = "50m", "128Mi"

# KubeRay's log pattern ("persist logs": a sidecar sharing /tmp/ray): follow every Serve log file
# of the session (controller, proxies, replicas: one per process, more as replicas start) from its
# first line, and by name, so rotation goes on. `kubectl logs POD -c serve-logs`. Argument $1: the
# folder /tmp/ray (a test runs it on another).
FOLLOW_SERVE_LOGS = """\
cd "$1"
followed=" "
while true; do
  for log in session_latest/logs/serve/*.log; do
    [ -e "$log" ] || continue
    case "$followed" in *" $log "*) continue ;; esac
    followed="$followed$log "
    tail -n +1 -F "$log" &
  done
  sleep 2
done
"""


def serve_logs_container(image: str) -> dict[str, Any]:
    """The log sidecar: the votes image itself (its shell and coreutils' tail)."""
    return {
        "name": LOG_SIDECAR,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", FOLLOW_SERVE_LOGS, LOG_SIDECAR, RAY_TMP],
        "securityContext": restricted_container(),
        "resources": {
            "requests": {"cpu": LOG_SIDECAR_CPU, "memory": LOG_SIDECAR_MEMORY},
            "limits": {"cpu": LOG_SIDECAR_CPU, "memory": LOG_SIDECAR_MEMORY},
        },
        "volumeMounts": [{"name": RAY_TMP_VOLUME, "mountPath": RAY_TMP, "readOnly": True}],
    }


# The head's GCS keeps its state in Redis and exits at once when Redis does not answer at its
# start (seen on the real node: exit 1 two seconds in, while Redis's pod was still starting; KubeRay
# made a new head ~100 s later). So the head pod waits for the port first. Arguments: host:port,
# seconds.
WAIT_FOR_TCP = """\
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        break
    except OSError as exc:
        if time.monotonic() > deadline:
            sys.exit(f"{sys.argv[1]} did not answer in {sys.argv[2]} s: {exc}")
        time.sleep(1)
print(f"{sys.argv[1]} answers")
"""
WAIT_FOR_REDIS = "wait-for-redis"
WAIT_FOR_REDIS_S = 600


def wait_for_tcp_container(name: str, image: str, address: str) -> dict[str, Any]:
    """An init container (the Ray image's Python) that waits until address accepts a connection."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-c", WAIT_FOR_TCP, address, str(WAIT_FOR_REDIS_S)],
        "securityContext": restricted_container(),
        "resources": {
            "requests": {"cpu": LOG_SIDECAR_CPU, "memory": LOG_SIDECAR_MEMORY},
            "limits": {"cpu": LOG_SIDECAR_CPU, "memory": LOG_SIDECAR_MEMORY},
        },
    }


# Pod Security Standards, `restricted` (the namespace enforces it: deployments/k8s/namespace.yaml).
# The Ray image's user is `ray`, uid 1000, group `users` (100); a user name is not enough for
# runAsNonRoot (the kubelet cannot check it), hence the numbers.
RAY_UID, RAY_GID = 1000, 100


def restricted_container() -> dict[str, Any]:
    """A container securityContext of the `restricted` profile (with the pod's)."""
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def restricted_pod(uid: int, gid: int) -> dict[str, Any]:
    """A pod securityContext of the `restricted` profile, running as uid:gid."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "fsGroup": gid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_template(
    component: str, container: dict[str, Any], *, object_store: str, grace_s: int
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        # Autoscaler v2 wants Ray pods that are replaced, not restarted in place.
        "restartPolicy": "Never",
        # KubeRay copies the Ray container's securityContext to the init container it injects
        # (and the GCS cleanup Job keeps the pod's): both pass the `restricted` profile too.
        "securityContext": restricted_pod(RAY_UID, RAY_GID),
        "terminationGracePeriodSeconds": grace_s,
        # The Ray container first: KubeRay takes the first container for Ray's.
        "containers": [container, serve_logs_container(container["image"])],
        "volumes": [
            {
                "name": SHM_VOLUME,
                "emptyDir": {
                    "medium": "Memory",
                    "sizeLimit": shm_size(quantity_bytes(object_store)),
                },
            },
            {"name": RAY_TMP_VOLUME, "emptyDir": {}},
        ],
    }
    if component == "ray-worker":
        # Worker pods of one Ray cluster on different nodes (as many nodes as there are): with
        # max_replicas_per_node 1 the two ingress replicas then never share a node.
        # matchLabelKeys: per RayCluster, so the new cluster of an upgrade spreads on its own.
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": dict(WORKER_POD_SELECTOR)},
                "matchLabelKeys": ["ray.io/cluster"],
            }
        ]
    return {
        "metadata": {"labels": {**RAY_POD_LABELS, "app.kubernetes.io/component": component}},
        "spec": spec,
    }


# Labels every worker pod has (KubeRay's ray.io/node-type, ours): what the spread counts and the
# workers' PodDisruptionBudget (deployments/k8s/disruption-budgets.yaml) selects.
WORKER_POD_SELECTOR = {"ray.io/node-type": "worker", "app.kubernetes.io/component": "ray-worker"}
