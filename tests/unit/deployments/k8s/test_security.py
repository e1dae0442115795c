"""Closed by default: the namespace's NetworkPolicies, Kafka's authentication and ACLs, and the
least-privilege logins of the app, checked over the rendered manifests (deployments/k8s with the
generated kuberay/rayservice.yaml).

The NetworkPolicies are evaluated here the way the API defines them (policies add up; a pod that
some policy selects for Ingress takes only what one of their rules allows, and one selected for
Egress opens only what one of theirs allows; a named port resolves against the receiving pod's
container ports; an ipBlock matches addresses outside the pod network: the API server, the
metadata server, the world). The pods they apply to are modelled from the
manifests: Ray pods with the labels KubeRay gives them
(tests/unit/deployments/k8s/test_kuberay_labels.py) and the container ports of the generated
RayService, Strimzi's pods with Strimzi's labels and the Kafka CR's listener ports, the other pods
from their templates. The flows the design needs are read from the manifests too: every client
address (ConfigMap, secrets.env.example's URLs, the RayService's env, Grafana's data sources), the
Gateway's routes and Prometheus' scrape config.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from deployments.manifests.kustomize import parse_env_file
from deployments.manifests.names import KAFKA_USER, SERVE_GRPC_PORT_NAME, SERVE_PORT_NAME
from devkit import k8s_validation as kv
from serve_app.ingress.batch_producer import TRANSACTIONAL_ID_PREFIX
from tests.unit.deployments.k8s.test_kuberay_labels import ray_pods

NAMESPACE = "votes"
DIRECT_HTTP = range(30000, 31001)
DIRECT_GRPC = range(40000, 41001)
# Ray's well-known ports on every node that are not container ports of the RayService.
DASHBOARD_AGENT_PORT = 52365
# Where docs/kubernetes.md installs the operators and the Gateway (their pods reach in).
NAMESPACES = {
    NAMESPACE: {"kubernetes.io/metadata.name": NAMESPACE},
    "kuberay-system": {"kubernetes.io/metadata.name": "kuberay-system"},
    "strimzi": {"kubernetes.io/metadata.name": "strimzi"},
    "envoy-gateway-system": {"kubernetes.io/metadata.name": "envoy-gateway-system"},
    "kube-system": {"kubernetes.io/metadata.name": "kube-system"},
    "elsewhere": {"kubernetes.io/metadata.name": "elsewhere"},
}
# Endpoints outside the pod network (no namespace): what an ipBlock peer matches.
HOST = ""


@dataclass
class Pod:
    name: str
    labels: dict[str, str]
    namespace: str = NAMESPACE
    ports: dict[str, int] = field(default_factory=dict)  # container port name -> number
    ip: str | None = None  # endpoints outside the pod network (namespace HOST) only


# ---------------------------------------------------------------------------------------------
# The objects and the pods
# ---------------------------------------------------------------------------------------------


@functools.cache
def _docs() -> tuple[dict[str, Any], ...]:
    return tuple(kv.main_docs())


def docs() -> list[dict[str, Any]]:
    return list(_docs())


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in docs() if d["kind"] == kind]


def policies() -> list[dict[str, Any]]:
    return of_kind("NetworkPolicy")


def rayservice() -> dict[str, Any]:
    return kv.one(docs(), "RayService")


def kafka() -> dict[str, Any]:
    return kv.one(docs(), "Kafka")


def _container_ports(template: dict[str, Any]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for container in template["spec"]["containers"]:
        for port in container.get("ports") or []:
            ports[port.get("name") or str(port["containerPort"])] = port["containerPort"]
    return ports


def ray_pod_models() -> dict[str, Pod]:
    """The head and one pod per worker group, labelled as KubeRay labels them."""
    cluster = rayservice()["spec"]["rayClusterConfig"]
    labels = ray_pods(rayservice())
    templates = {"head": cluster["headGroupSpec"]["template"]} | {
        group["groupName"]: group["template"] for group in cluster["workerGroupSpecs"]
    }
    return {
        role: Pod(f"ray-{role}", labels[role], ports=_container_ports(templates[role]))
        for role in labels
    }


# Strimzi's own ports on every Kafka pod (KafkaCluster.java, Strimzi 0.51): the control plane and
# replication listeners, and the Kafka agent the cluster operator polls during rolls.
KAFKA_AGENT_PORT = 8443


def kafka_listener_ports() -> dict[str, int]:
    ports = {"controlplane": 9090, "replication": 9091}
    for listener in kafka()["spec"]["kafka"]["listeners"]:
        ports[listener["name"]] = listener["port"]
    return ports


def strimzi_pods() -> dict[str, Pod]:
    cluster = kafka()["metadata"]["name"]
    pool = kv.one(docs(), "KafkaNodePool")["metadata"]["name"]
    return {
        "kafka": Pod(
            "kafka",
            {
                "strimzi.io/cluster": cluster,
                "strimzi.io/kind": "Kafka",
                "strimzi.io/name": f"{cluster}-kafka",
                "strimzi.io/pool-name": pool,
                "strimzi.io/broker-role": "true",
                "strimzi.io/controller-role": "true",
            },
            ports=kafka_listener_ports() | {"kafkaagent": KAFKA_AGENT_PORT},
        ),
        "entity-operator": Pod(
            "entity-operator",
            {
                "strimzi.io/cluster": cluster,
                "strimzi.io/kind": "Kafka",
                "strimzi.io/name": f"{cluster}-entity-operator",
            },
        ),
    }


def workload_pods() -> dict[str, Pod]:
    """Pods of our Deployments and StatefulSets (and the optional load generator's Job)."""
    pods = {}
    workloads = [d for d in docs() if d["kind"] in ("Deployment", "StatefulSet")]
    workloads += [d for d in kv.rendered("deployments/k8s/optional") if d["kind"] == "Job"]
    for doc in workloads:
        template = doc["spec"]["template"]
        labels = template["metadata"]["labels"]
        pods[labels["app.kubernetes.io/component"]] = Pod(
            doc["metadata"]["name"], dict(labels), ports=_container_ports(template)
        )
    return pods


def outside_pods() -> dict[str, Pod]:
    return {
        # Envoy Gateway's data plane for the Gateway `votes` (its own labels).
        "gateway": Pod(
            "envoy-votes",
            {
                "app.kubernetes.io/name": "envoy",
                "app.kubernetes.io/component": "proxy",
                "app.kubernetes.io/managed-by": "envoy-gateway",
                "gateway.envoyproxy.io/owning-gateway-name": "votes",
                "gateway.envoyproxy.io/owning-gateway-namespace": NAMESPACE,
            },
            namespace="envoy-gateway-system",
        ),
        "kuberay-operator": Pod(
            "kuberay-operator",
            {"app.kubernetes.io/name": "kuberay-operator"},
            namespace="kuberay-system",
        ),
        "strimzi-operator": Pod(
            "strimzi-cluster-operator",
            {"name": "strimzi-cluster-operator", "strimzi.io/kind": "cluster-operator"},
            namespace="strimzi",
        ),
        # The cluster's DNS, the API server (its address, after the Service's translation), the
        # cloud's metadata server and the rest of the world.
        "kube-dns": Pod("coredns", {"k8s-app": "kube-dns"}, namespace="kube-system"),
        "api-server": Pod("api-server", {}, namespace=HOST, ip="10.0.0.2"),
        "metadata-server": Pod("metadata", {}, namespace=HOST, ip="169.254.169.254"),
        "internet": Pod("internet", {}, namespace=HOST, ip="203.0.113.7"),
        # Whatever else runs in the cluster, in our namespace or not.
        "intruder": Pod("intruder", {"app": "intruder"}),
        "intruder-elsewhere": Pod("intruder", {"app": "intruder"}, namespace="elsewhere"),
        "gateway-elsewhere": Pod(
            "envoy-other",
            {"gateway.envoyproxy.io/owning-gateway-name": "other"},
            namespace="envoy-gateway-system",
        ),
        # A Gateway data plane run next to the Gateway, labelled with Gateway API's own label.
        "gateway-in-namespace": Pod(
            "votes-gateway", {"gateway.networking.k8s.io/gateway-name": "votes"}
        ),
        # A Gateway also named `votes`, of another namespace: its routes are not ours.
        "gateway-of-another-namespace": Pod(
            "envoy-votes-elsewhere",
            {
                "gateway.envoyproxy.io/owning-gateway-name": "votes",
                "gateway.envoyproxy.io/owning-gateway-namespace": "elsewhere",
            },
            namespace="envoy-gateway-system",
        ),
    }


def all_pods() -> dict[str, Pod]:
    return ray_pod_models() | strimzi_pods() | workload_pods() | outside_pods()


# ---------------------------------------------------------------------------------------------
# NetworkPolicy semantics
# ---------------------------------------------------------------------------------------------


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels is modelled: {selector}"
    return (selector.get("matchLabels") or {}).items() <= labels.items()


def _peer_matches(peer: dict[str, Any], other: Pod) -> bool:
    """Whether a rule's peer (`from` of an ingress rule, `to` of an egress rule) is `other`."""
    if "ipBlock" in peer:
        if other.ip is None:
            return False  # ipBlock is for addresses outside the pod network
        address = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(excluded) for excluded in block.get("except") or []
        )
    if "namespaceSelector" in peer:
        if other.namespace not in NAMESPACES:
            return False
        if not _matches(peer["namespaceSelector"], NAMESPACES[other.namespace]):
            return False
    elif other.namespace != NAMESPACE:
        return False
    return _matches(peer.get("podSelector") or {}, other.labels)


def _port_matches(rule_port: dict[str, Any], destination: Pod, port: int, protocol: str) -> bool:
    if rule_port.get("protocol", "TCP") != protocol:
        return False
    wanted = rule_port.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return destination.ports.get(wanted) == port
    return wanted <= port <= rule_port.get("endPort", wanted)


def _lets_through(
    in_force: list[dict[str, Any]],
    direction: str,
    pod: Pod,
    peer: Pod,
    destination: Pod,
    port: int,
    protocol: str,
) -> bool:
    """Whether the policies selecting `pod` for `direction` (Ingress: pod is the destination,
    Egress: the source) allow the connection with `peer`; a pod no policy selects allows all."""
    selecting = [
        p
        for p in in_force
        if direction in p["spec"].get("policyTypes", ["Ingress"])
        and _matches(p["spec"]["podSelector"], pod.labels)
    ]
    if not selecting:
        return True
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(rules_key) or []:
            peers = rule.get(peers_key)
            if peers and not any(_peer_matches(p, peer) for p in peers):
                continue
            ports = rule.get("ports")
            if ports and not any(_port_matches(p, destination, port, protocol) for p in ports):
                continue
            return True
    return False


def allowed(
    source: Pod,
    destination: Pod,
    port: int,
    in_force: list[dict[str, Any]] | None = None,
    protocol: str = "TCP",
) -> bool:
    """Whether the namespace's policies (or `in_force`) let source open a connection to
    destination:port: the source's egress policies if it is in the namespace, the destination's
    ingress policies if it is."""
    in_force = policies() if in_force is None else in_force
    if source.namespace == NAMESPACE and not _lets_through(
        in_force, "Egress", source, destination, destination, port, protocol
    ):
        return False
    if destination.namespace == NAMESPACE:
        return _lets_through(in_force, "Ingress", destination, source, destination, port, protocol)
    return True


# ---------------------------------------------------------------------------------------------
# The flows the design needs, read from the manifests
# ---------------------------------------------------------------------------------------------


def _host_port(address: str) -> tuple[str, int]:
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    assert parts.hostname and parts.port, address
    return parts.hostname.split(".")[0], parts.port


def service_backends(host: str, port: int) -> list[tuple[Pod, int]]:
    """The pods and target port behind `host:port`: our Services, KubeRay's and Strimzi's."""
    pods = all_pods()
    ray = ray_pod_models()
    spec = rayservice()["spec"]
    if host == f"{kafka()['metadata']['name']}-kafka-bootstrap":
        assert port in kafka_listener_ports().values(), f"no Kafka listener on {port}"
        return [(pods["kafka"], port)]
    if host == (spec.get("serveService") or {}).get("metadata", {}).get("name", "votes-serve-svc"):
        workers = [pod for role, pod in ray.items() if role != "head"]
        serving = workers if spec.get("excludeHeadPodFromServeSvc") else [ray["head"], *workers]
        named = {SERVE_PORT_NAME, SERVE_GRPC_PORT_NAME}
        return [
            (pod, port)
            for pod in serving
            if port in {pod.ports[n] for n in named if n in pod.ports}
        ]
    for service in of_kind("Service"):
        if service["metadata"]["name"] != host:
            continue
        (service_port,) = [p for p in service["spec"]["ports"] if p["port"] == port]
        found = []
        for pod in pods.values():
            if (
                pod.namespace == NAMESPACE
                and service["spec"]["selector"].items() <= pod.labels.items()
            ):
                target = service_port.get("targetPort", port)
                found.append((pod, pod.ports[target] if isinstance(target, str) else target))
        assert found, f"Service {host} selects no pod"
        return found
    raise AssertionError(f"no Service {host} known to this test")


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}


def prometheus_flows() -> list[tuple[str, str, Pod, int]]:
    """Prometheus to the Ray ports its scrape config keeps (by container port name)."""
    scrape = yaml.safe_load(
        kv.one(docs(), "ConfigMap", "votes-prometheus-config")["data"]["prometheus.yml"]
    )
    (ray_job,) = [j for j in scrape["scrape_configs"] if j["job_name"] == "ray"]
    (port_rule,) = [
        r
        for r in ray_job["relabel_configs"]
        if r["source_labels"] == ["__meta_kubernetes_pod_container_port_name"]
    ]
    return [
        ("Prometheus -> Ray metrics", "prometheus", pod, number)
        for pod in ray_pod_models().values()
        for name, number in pod.ports.items()
        if re.fullmatch(port_rule["regex"], name)
    ]


def ray_internal_flows() -> list[tuple[str, str, Pod, int]]:
    """Ray among themselves: GCS, the dashboard and its agent, and the ingress replicas' direct
    ports (HAProxy on any Ray pod forwards to a replica on any other)."""
    ray = ray_pod_models()
    return [
        ("Ray <-> Ray", source, destination, port)
        for source in ray
        for destination in ray.values()
        for port in sorted(
            {
                *destination.ports.values(),
                DIRECT_HTTP[0],
                DIRECT_HTTP[-1],
                DIRECT_GRPC[0],
                DIRECT_GRPC[-1],
                DASHBOARD_AGENT_PORT,
            }
        )
    ]


def needed_flows() -> list[tuple[str, str, Pod, int]]:
    """(what, source role, destination pod, port) for every flow the design needs."""
    pods = all_pods()
    ray = ray_pod_models()
    flows: list[tuple[str, str, Pod, int]] = []

    def to(what: str, sources: list[str], address: str) -> None:
        for destination, port in service_backends(*_host_port(address)):
            flows.extend((what, source, destination, port) for source in sources)

    config = kv.one(docs(), "ConfigMap", "votes-config")["data"]
    secrets = parse_env_file(kv.REPO.k8s / "secrets.env.example")
    head = kv.head_container(rayservice())
    app_env = config | {
        k: v
        for c in [head, *kv.worker_containers(rayservice())]
        for k, v in _env(c).items()
        if k.startswith("VOTES_")
    }
    for server in app_env["VOTES_KAFKA_BOOTSTRAP_SERVERS"].split(","):
        to("app -> Kafka", list(ray), server)
    to("app -> Redis", list(ray), secrets["VOTES_REDIS_URL"])
    to("app -> MongoDB", list(ray), secrets["VOTES_MONGO_URL"])
    gcs = rayservice()["spec"]["rayClusterConfig"].get("gcsFaultToleranceOptions")
    if gcs:
        to("head (GCS) -> Redis", ["head"], gcs["redisAddress"])
    head_env = _env(head)
    to("Ray dashboard -> Grafana", ["head"], head_env["RAY_GRAFANA_HOST"])
    to("Ray dashboard -> Prometheus", ["head"], head_env["RAY_PROMETHEUS_HOST"])

    grafana_sources = yaml.safe_load(
        kv.one(docs(), "ConfigMap", "votes-grafana-datasources")["data"]["datasources.yaml"]
    )["datasources"]
    for source in grafana_sources:
        to(f"Grafana -> {source['name']}", ["grafana"], source["url"])

    for route in of_kind("HTTPRoute") + of_kind("GRPCRoute"):
        for rule in route["spec"]["rules"]:
            for backend in rule["backendRefs"]:
                to(
                    f"Gateway -> {backend['name']}",
                    ["gateway", "gateway-in-namespace"],
                    f"{backend['name']}:{backend['port']}",
                )
    locust = kv.one(kv.rendered("deployments/k8s/optional"), "Job")
    (host,) = [
        a.split("=", 1)[1]
        for a in locust["spec"]["template"]["spec"]["containers"][0]["args"]
        if a.startswith("--host=")
    ]
    to("load generator -> Serve", ["locust"], host)

    flows += prometheus_flows() + ray_internal_flows()
    # KubeRay's operator: serveConfigV2 and Serve's status on the head's dashboard.
    flows.append(
        (
            "KubeRay -> head dashboard",
            "kuberay-operator",
            ray["head"],
            ray["head"].ports["dashboard"],
        )
    )
    # Strimzi: the brokers among themselves and the entity operator on the internal listeners.
    kafka_ports = kafka_listener_ports()
    for source in ("kafka", "entity-operator", "strimzi-operator"):
        for name in ("controlplane", "replication"):
            flows.append((f"Strimzi {source} -> Kafka", source, pods["kafka"], kafka_ports[name]))
    flows.append(("Strimzi operator -> Kafka agent", "strimzi-operator", pods["kafka"], 8443))
    # The API server: KubeRay's autoscaler sidecar in the head (when the RayService enables it),
    # Prometheus' pod discovery, Strimzi's entity operator (topics, users, their Secrets).
    api_clients = ["prometheus", "entity-operator"]
    if rayservice()["spec"]["rayClusterConfig"].get("enableInTreeAutoscaling"):
        api_clients.append("head")
    for source in api_clients:
        flows.append((f"{source} -> API server", source, pods["api-server"], 443))
    return flows


# ---------------------------------------------------------------------------------------------
# NetworkPolicy tests
# ---------------------------------------------------------------------------------------------


def test_the_namespace_denies_ingress_by_default() -> None:
    deny = [
        p
        for p in policies()
        if p["spec"]["podSelector"] == {}
        and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and not p["spec"].get("ingress")
    ]
    assert deny, "no default-deny ingress NetworkPolicy (podSelector {}, no ingress rules)"
    intruder = outside_pods()["intruder"]
    for pod in all_pods().values():
        if pod.namespace == NAMESPACE:
            for port in pod.ports.values():
                assert not allowed(intruder, pod, port), f"{pod.name}:{port} open to any pod"


def in_namespace() -> dict[str, Pod]:
    return {role: pod for role, pod in all_pods().items() if pod.namespace == NAMESPACE}


def test_the_namespace_denies_egress_by_default() -> None:
    """Ray pods run imported code: nothing in the namespace reaches the cloud's metadata server,
    the world on plain ports, or pods of other namespaces; the intruder reaches nothing at all."""
    deny = [
        p
        for p in policies()
        if p["spec"]["podSelector"] == {}
        and "Egress" in p["spec"].get("policyTypes", [])
        and not p["spec"].get("egress")
    ]
    assert deny, "no default-deny egress NetworkPolicy (podSelector {}, no egress rules)"
    pods = all_pods()
    for role, pod in in_namespace().items():
        for port in (80, 443, 6443, 8080):
            assert not allowed(pod, pods["metadata-server"], port), f"{role} -> metadata:{port}"
        for port in (22, 25, 80, 6379, 9092):
            assert not allowed(pod, pods["internet"], port), f"{role} -> world:{port}"
        assert not allowed(pod, pods["kuberay-operator"], 8080), role
    intruder = pods["intruder"]
    for role, pod in pods.items():
        for port in (*pod.ports.values(), 443, 6379):
            if role != "kube-dns":
                assert not allowed(intruder, pod, port), f"intruder -> {role}:{port}"


# Pods that may open HTTPS to the world: Grafana's init container installs its Redis plugin from
# grafana.com (grafana/grafana.yaml).
WORLD_HTTPS = {"grafana"}


def test_every_pod_resolves_names_and_only_the_api_clients_reach_the_api_server() -> None:
    pods = all_pods()
    api_clients = {source for what, source, *_ in needed_flows() if what.endswith("API server")}
    assert "head" in api_clients, "the head's autoscaler sidecar needs the API server"
    for role, pod in in_namespace().items():
        for protocol in ("UDP", "TCP"):
            assert allowed(pod, pods["kube-dns"], 53, protocol=protocol), (role, protocol)
        assert not allowed(pod, pods["kube-dns"], 8080), role
        reaches = allowed(pod, pods["api-server"], 443)
        assert reaches == (role in api_clients | WORLD_HTTPS), role


def test_workers_reach_only_ray_pods_and_the_stores() -> None:
    """A worker's egress, port by port: Ray pods, Kafka's SCRAM listener, Redis, MongoDB, DNS."""
    pods = all_pods()
    ray = ray_pod_models()
    worker = next(pod for role, pod in ray.items() if role != "head")
    reachable = {
        (role, port)
        for role, pod in pods.items()
        for port in {*pod.ports.values(), 53, 443, 3000, 9090, 9094}
        if allowed(worker, pod, port)
    }
    expected = {(role, port) for role, pod in ray.items() for port in pod.ports.values()} | {
        (role, port) for role, port in reachable if role in ray
    }
    expected |= {
        ("kafka", kafka_listener_ports()["scram"]),
        ("redis", 6379),
        ("mongo", 27017),
        ("kube-dns", 53),
    }
    assert reachable == expected, reachable ^ expected


def test_every_flow_the_design_needs_is_allowed() -> None:
    pods = all_pods()
    flows = needed_flows()
    kinds = {what for what, *_ in flows}
    assert {
        "app -> Kafka",
        "app -> Redis",
        "app -> MongoDB",
        "Grafana -> Redis",
        "Grafana -> Prometheus",
        "Prometheus -> Ray metrics",
        "Ray <-> Ray",
        "Gateway -> votes-serve-svc",
    } <= kinds, kinds
    refused = [
        f"{what}: {source} -> {destination.name}:{port}"
        for what, source, destination, port in flows
        if not allowed(pods[source], destination, port)
    ]
    assert not refused, "\n".join(refused)


def test_the_direct_ingress_ports_are_open_to_ray_pods_only() -> None:
    """The ingress replicas' own servers (30000-31000 HTTP, 40000-41000 gRPC) run the app
    without HAProxy in front: no pod but a Ray pod of votes reaches them, not even the Gateway
    (it goes through votes-serve-svc's ports)."""
    ray = ray_pod_models()
    others = {role: pod for role, pod in all_pods().items() if role not in ray}
    assert {"gateway", "intruder", "grafana", "prometheus", "locust", "redis", "kafka"} <= set(
        others
    )
    for destination in ray.values():
        for port in (*DIRECT_HTTP, *DIRECT_GRPC):
            for source in ray.values():
                assert allowed(source, destination, port), (source.name, destination.name, port)
            for role, source in others.items():
                assert not allowed(source, destination, port), (
                    f"{role} reaches {destination.name}:{port}"
                )


def test_serve_ports_are_open_to_the_gateway_not_to_other_workloads() -> None:
    pods = all_pods()
    for worker in [p for role, p in ray_pod_models().items() if role != "head"]:
        for name in (SERVE_PORT_NAME, SERVE_GRPC_PORT_NAME):
            port = worker.ports[name]
            assert allowed(pods["gateway"], worker, port)
            for role in (
                "intruder",
                "intruder-elsewhere",
                "gateway-elsewhere",
                "gateway-of-another-namespace",
                "grafana",
                "redis",
            ):
                assert not allowed(pods[role], worker, port), f"{role} reaches {name}"


def test_the_kuberay_operator_reaches_only_the_head_port_it_calls() -> None:
    """KubeRay 1.6.2 calls the head's dashboard (serveConfigV2, Serve's status) and, only when
    the head serves traffic, its Serve proxy (updateHeadPodServeLabel); with
    excludeHeadPodFromServeSvc it never does. Ray's dashboard agent (52365) is only probed by the
    kubelet, which policies do not see."""
    operator = outside_pods()["kuberay-operator"]
    head = ray_pod_models()["head"]
    spec = rayservice()["spec"]
    called = {head.ports["dashboard"]}
    if not spec.get("excludeHeadPodFromServeSvc"):
        called.add(head.ports[SERVE_PORT_NAME])
    for port in sorted({*head.ports.values(), DASHBOARD_AGENT_PORT}):
        assert allowed(operator, head, port) == (port in called), port


def test_the_kafka_agent_port_is_open_to_the_cluster_operator_only() -> None:
    pods = all_pods()
    assert allowed(pods["strimzi-operator"], pods["kafka"], KAFKA_AGENT_PORT)
    for role in ("entity-operator", "intruder", "kuberay-operator", "head"):
        source = pods[role]
        assert not allowed(source, pods["kafka"], KAFKA_AGENT_PORT), role


def test_the_stores_take_only_their_clients() -> None:
    pods = all_pods()
    ray = set(ray_pod_models())
    clients = {"redis": ray | {"grafana"}, "mongo": ray, "kafka": ray}
    for store, allowed_sources in clients.items():
        destination = pods[store]
        port = {"redis": 6379, "mongo": 27017, "kafka": kafka_listener_ports()["scram"]}[store]
        for role, source in pods.items():
            expected = role in allowed_sources
            assert allowed(source, destination, port) == expected, (role, store, expected)


def test_the_evaluator_can_fail() -> None:
    """Without the default deny any pod reaches everything, and a deny alone lets nothing in."""
    pods = all_pods()
    assert allowed(pods["intruder"], pods["redis"], 6379, in_force=[])
    only_deny = [p for p in policies() if p["spec"]["podSelector"] == {}]
    assert not allowed(pods["grafana"], pods["redis"], 6379, in_force=only_deny)
    without_deny = [p for p in policies() if p["spec"]["podSelector"] != {}]
    assert allowed(pods["intruder"], pods["locust"], 8089, in_force=without_deny)
    assert not allowed(pods["intruder"], pods["locust"], 8089)


# ---------------------------------------------------------------------------------------------
# Kafka: SCRAM logins and ACLs
# ---------------------------------------------------------------------------------------------


def test_kafka_has_no_unauthenticated_listener_and_uses_acls() -> None:
    spec = kafka()["spec"]
    listeners = spec["kafka"]["listeners"]
    assert all((ln.get("authentication") or {}).get("type") for ln in listeners), listeners
    (scram,) = [ln for ln in listeners if ln["name"] == "scram"]
    assert scram == scram | {"port": 9094, "type": "internal", "tls": False}
    assert scram["authentication"] == {"type": "scram-sha-512"}
    assert spec["kafka"]["authorization"]["type"] == "simple"
    assert "userOperator" in spec["entityOperator"], "KafkaUsers need the user operator"
    # Strimzi's generated NetworkPolicy opens the listener to the Ray pods only.
    peers = scram["networkPolicyPeers"]
    ray = ray_pod_models()
    intruder = outside_pods()["intruder"]
    assert all(any(_peer_matches(p, pod) for p in peers) for pod in ray.values())
    assert not any(_peer_matches(p, intruder) for p in peers)


def test_the_app_logs_into_kafka_as_its_kafka_user() -> None:
    user = kv.one(docs(), "KafkaUser")
    assert user["metadata"]["name"] == KAFKA_USER
    assert user["metadata"]["labels"]["strimzi.io/cluster"] == kafka()["metadata"]["name"]
    assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
    config = kv.one(docs(), "ConfigMap", "votes-config")["data"]
    host, port = _host_port(config["VOTES_KAFKA_BOOTSTRAP_SERVERS"])
    assert (host, port) == (f"{kafka()['metadata']['name']}-kafka-bootstrap", 9094)
    for container in [kv.head_container(rayservice()), *kv.worker_containers(rayservice())]:
        env = {e["name"]: e for e in container["env"]}
        values = config | {k: e["value"] for k, e in env.items() if "value" in e}
        assert values["VOTES_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert values["VOTES_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert values["VOTES_KAFKA_SASL_USERNAME"] == user["metadata"]["name"]
        assert values["VOTES_KAFKA_BOOTSTRAP_SERVERS"] == config["VOTES_KAFKA_BOOTSTRAP_SERVERS"]
        # Strimzi writes the user's password into a Secret of the user's name, key `password`.
        assert env["VOTES_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": user["metadata"]["name"],
            "key": "password",
        }


def _acl_rights(user: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    rights: dict[tuple[str, str], set[str]] = {}
    for acl in user["spec"]["authorization"]["acls"]:
        assert acl.get("type", "allow") == "allow"
        resource = acl["resource"]
        # A prefix only for the ingress's transactional ids: they carry a random part per replica.
        pattern = resource.get("patternType", "literal")
        assert pattern == "literal" or resource["type"] == "transactionalId", "no prefix ACLs"
        key = (resource["type"], resource.get("name", "") + ("*" if pattern == "prefix" else ""))
        rights.setdefault(key, set()).update(acl["operations"])
    return rights


def test_the_kafka_user_may_do_only_what_the_app_does() -> None:
    user = kv.one(docs(), "KafkaUser")
    config = kv.one(docs(), "ConfigMap", "votes-config")["data"]
    topic, dlq = config["VOTES_KAFKA_TOPIC"], config["VOTES_KAFKA_DLQ_TOPIC"]
    group = config["VOTES_KAFKA_CONSUMER_GROUP"]
    rights = _acl_rights(user)
    assert rights == {
        ("topic", topic): {"Describe", "Write", "Read"},  # ingress produces, the pool consumes
        ("topic", dlq): {"Describe", "Write", "Read"},  # dead letters, and replaying them
        ("group", group): {"Describe", "Read"},  # the pool's consumer group and its offsets
        # the ingress's transactional producers, one Kafka transaction per batch
        ("transactionalId", TRANSACTIONAL_ID_PREFIX + "*"): {"Describe", "Write"},
    }
    topics = {t["metadata"]["name"] for t in of_kind("KafkaTopic")}
    assert {topic, dlq} <= topics


# ---------------------------------------------------------------------------------------------
# Least-privilege logins to the stores
# ---------------------------------------------------------------------------------------------


def test_the_app_logs_into_the_stores_as_least_privilege_users() -> None:
    secrets = parse_env_file(kv.REPO.k8s / "secrets.env.example")
    redis_url = urlsplit(secrets["VOTES_REDIS_URL"])
    assert redis_url.username == "votes-app"
    assert redis_url.password == secrets["REDIS_APP_PASSWORD"]
    mongo_url = urlsplit(secrets["VOTES_MONGO_URL"])
    assert (
        mongo_url.username == "votes-app" and mongo_url.username != secrets["MONGO_ROOT_USERNAME"]
    )
    assert mongo_url.password == secrets["MONGO_APP_PASSWORD"]
    assert "authSource=votes" in mongo_url.query
    assert (
        len(
            {
                secrets[k]
                for k in (
                    "REDIS_APP_PASSWORD",
                    "REDIS_PASSWORD",
                    "REDIS_ADMIN_PASSWORD",
                    "REDIS_GCS_PASSWORD",
                    "MONGO_ROOT_PASSWORD",
                    "MONGO_APP_PASSWORD",
                )
            }
        )
        == 6
    )


def test_store_admin_passwords_reach_only_their_servers() -> None:
    """Root/admin passwords are read by the store's own container only (and REDIS_PASSWORD, the
    read-only Redis user, by Grafana); Ray containers get the app's URLs, never these keys."""
    server_only = {
        "MONGO_ROOT_PASSWORD": {"votes-mongo"},
        "MONGO_ROOT_USERNAME": {"votes-mongo"},
        "MONGO_APP_PASSWORD": {"votes-mongo"},
        "REDIS_ADMIN_PASSWORD": {"votes-redis"},
        "REDIS_APP_PASSWORD": {"votes-redis"},
        "REDIS_PASSWORD": {"votes-redis", "votes-grafana"},
    }
    readers: dict[str, set[str]] = {}
    for doc in docs():
        text = yaml.safe_dump(doc)
        for key in server_only:
            if doc["kind"] not in ("Secret", "ConfigMap") and re.search(rf"key: {key}\b", text):
                readers.setdefault(key, set()).add(doc["metadata"]["name"])
    for key, expected in server_only.items():
        assert readers.get(key, set()) <= expected, (key, readers.get(key))
