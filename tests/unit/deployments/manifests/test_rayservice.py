"""deployments.manifests.rayservice (and pods, names): the RayService is shaped as the cluster needs
it (ports, env, labels), its serveConfigV2 config.yaml itself and valid for Ray.

Offline and fast: no cluster, no kubectl (shared helpers: devkit/k8s_validation/).
"""

from __future__ import annotations

import base64
import copy
import socket
import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit

import yaml

from deployments.manifests.names import (
    CONFIG_MAP,
    GCS_REDIS_ADDRESS,
    IMAGE_REPOSITORY,
    KAFKA_SCRAM_BOOTSTRAP,
    RAY_AUTH_TOKEN_KEY,
    SECRET,
    SECRET_ENV_KEYS,
)
from deployments.manifests.overrides import KUBERNETES_OVERRIDES
from deployments.manifests.pods import WAIT_FOR_TCP
from deployments.manifests.sources import load_config, project_version, ray_version, serve_ports
from devkit import k8s_validation as kv
from devkit.k8s_validation import (
    PLACEHOLDER,
    REPO,
    head_container,
    main_docs,
    one,
    worker_containers,
)
from serve_app.settings import Settings, env_name, load_settings


def ports(container: dict[str, Any]) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container.get("ports") or []}


def test_rayservice_cluster_shape() -> None:
    rayservice = one(main_docs(), "RayService")
    cluster = rayservice["spec"]["rayClusterConfig"]
    assert rayservice["apiVersion"] == "ray.io/v1"
    assert cluster["rayVersion"] == ray_version(REPO.pyproject) == "2.60.0"
    assert cluster["enableInTreeAutoscaling"] is True
    options = cluster["autoscalerOptions"]
    assert options["upscalingMode"] == "Default" and options["idleTimeoutSeconds"] == 60
    assert options["version"] == "v2"
    assert options["resources"]["requests"] and options["resources"]["limits"]
    assert cluster["headGroupSpec"]["rayStartParams"] == {
        "num-cpus": "0",
        "dashboard-host": "0.0.0.0",
        "object-store-memory": str(512 * 2**20),
    }
    (group,) = cluster["workerGroupSpecs"]
    assert (group["groupName"], group["minReplicas"], group["maxReplicas"]) == ("workers", 2, 4)
    assert group["rayStartParams"] == {"object-store-memory": str(2**30)}
    for container in [head_container(rayservice), *worker_containers(rayservice)]:
        assert container["image"] == f"{IMAGE_REPOSITORY}:{project_version(REPO.pyproject)}"
        resources = container["resources"]
        assert resources["requests"] == resources["limits"]
        # KubeRay's injected probes check the Serve proxy on workers; ours would replace them.
        assert "readinessProbe" not in container and "livenessProbe" not in container
        env = {e["name"] for e in container["env"]}
        # KubeRay sets it from autoscalerOptions.version and refuses both at once.
        assert "RAY_enable_autoscaler_v2" not in env


def test_rayservice_has_no_deprecated_or_ignored_fields() -> None:
    spec = one(main_docs(), "RayService")["spec"]
    for field in (
        "serviceUnhealthySecondThreshold",
        "deploymentUnhealthySecondThreshold",
        "serveConfig",
    ):
        assert field not in spec
    assert kv.crd_deprecation("ray.io", "v1", "RayService") is None


def test_ray_ports_and_serve_service_names() -> None:
    """KubeRay 1.6+ builds <name>-serve-svc from the head container's ports named serve/serve-*;
    the worker readiness probe checks the Serve proxy on the port named serve."""
    http_port, grpc_port = serve_ports(load_config(REPO.config))
    rayservice = one(main_docs(), "RayService")
    head = ports(head_container(rayservice))
    assert head == {
        "gcs-server": 6379,
        "dashboard": 8265,
        "client": 10001,
        "serve": http_port,
        "serve-grpc": grpc_port,
        "metrics": 8080,
        "as-metrics": 44217,
        "dash-metrics": 44227,
    }
    for worker in worker_containers(rayservice):
        assert ports(worker) == {"serve": http_port, "serve-grpc": grpc_port, "metrics": 8080}


def test_gateway_routes_reach_the_serve_service() -> None:
    """Gateway API, no Ingress: HTTPRoute -> votes-serve-svc:8000, GRPCRoute -> :9000 (h2c)."""
    docs = main_docs()
    assert not [d for d in docs if d["kind"] == "Ingress"], "ingress-nginx is retired"
    rayservice = one(docs, "RayService")
    head = ports(head_container(rayservice))
    service = rayservice["spec"]["serveService"]
    serve_service = f"{rayservice['metadata']['name']}-serve-svc"
    assert service["metadata"]["name"] == serve_service
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    # KubeRay keeps our definition of a port the head container declares under the same name.
    assert set(service_ports) == {"serve", "serve-grpc"} <= set(head)
    assert service_ports["serve-grpc"]["appProtocol"] == "kubernetes.io/h2c"
    assert service_ports["serve-grpc"]["port"] == head["serve-grpc"]
    assert service_ports["serve"]["port"] == head["serve"]
    assert "selector" not in service["spec"], "KubeRay sets the selector; ours would be ignored"

    gateway = one(docs, "Gateway", "votes")
    listeners = {lst["name"]: lst for lst in gateway["spec"]["listeners"]}
    assert listeners["http"]["allowedRoutes"]["kinds"] == [{"kind": "HTTPRoute"}]
    assert listeners["grpc"]["allowedRoutes"]["kinds"] == [{"kind": "GRPCRoute"}]
    wanted = {"HTTPRoute": ("http", "serve"), "GRPCRoute": ("grpc", "serve-grpc")}
    for kind, (listener, port_name) in wanted.items():
        route = one(docs, kind)
        (parent,) = route["spec"]["parentRefs"]
        assert (parent["name"], parent["sectionName"]) == ("votes", listener)
        assert route["spec"]["hostnames"] == [listeners[listener]["hostname"]]
        for rule in route["spec"]["rules"]:
            (backend,) = rule["backendRefs"]
            assert backend["name"] == serve_service
            assert backend["port"] == service_ports[port_name]["port"]
    grpc_services = {
        m["method"]["service"] for m in one(docs, "GRPCRoute")["spec"]["rules"][0]["matches"]
    }
    proto = (REPO.root / "proto" / "votes.proto").read_text()
    assert "package votes.v1;" in proto and "service VoteService" in proto
    assert "votes.v1.VoteService" in grpc_services
    http_rule = one(docs, "HTTPRoute")["spec"]["rules"][0]
    timeout_s = int(http_rule["timeouts"]["request"].rstrip("s"))
    config = load_config(REPO.config)
    assert timeout_s > config["http_options"]["request_timeout_s"], "Serve must answer first"


def test_rayservice_env_reaches_every_setting_it_needs() -> None:
    """ConfigMap + Secret keys are VOTES_<setting>; with them, config.yaml's args become valid
    cluster settings that point at the cluster's own Kafka, Redis and MongoDB."""
    docs = main_docs()
    rayservice = one(docs, "RayService")
    config_map = one(docs, "ConfigMap", CONFIG_MAP)
    secret = one(docs, "Secret", SECRET)
    secret_values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    known = {env_name(field) for field in Settings.model_fields}
    for key in config_map["data"]:
        assert key in known, f"votes-config key {key} is no setting of serve_app/settings.py"
    for container in [head_container(rayservice), *worker_containers(rayservice)]:
        assert container["envFrom"] == [{"configMapRef": {"name": CONFIG_MAP}}]
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
        }
        # The agreed interface: the Kafka password from Strimzi's Secret of the KafkaUser.
        assert refs.pop("VOTES_KAFKA_SASL_PASSWORD") == {"name": "votes-app", "key": "password"}
        assert set(refs) == set(SECRET_ENV_KEYS)
        for name, ref in refs.items():
            assert name in known and ref == {"name": SECRET, "key": name}
            assert name in secret_values
        values = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        assert values["VOTES_KAFKA_SASL_USERNAME"] == "votes-app"
        assert values["VOTES_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert values["VOTES_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert values["VOTES_KAFKA_BOOTSTRAP_SERVERS"] == "votes-kafka-bootstrap:9094"
        assert set(values) <= known | {n for n in values if n.startswith("RAY_")}
        # No Ray pod reads the Ray token or the stores' server passwords from votes-secrets.
        assert RAY_AUTH_TOKEN_KEY not in refs

    container_env = {
        e["name"]: e["value"] for e in head_container(rayservice)["env"] if "value" in e
    }
    environ = (
        dict(config_map["data"])
        | {k: secret_values[k] for k in SECRET_ENV_KEYS}
        | {k: v for k, v in container_env.items() if k.startswith("VOTES_")}
        | {"VOTES_KAFKA_SASL_PASSWORD": "from-strimzi"}
    )
    settings = load_settings(load_config(REPO.config)["applications"][0]["args"], environ)
    kafka = one(docs, "Kafka")
    scram = [
        listener
        for listener in kafka["spec"]["kafka"]["listeners"]
        if (listener.get("authentication") or {}).get("type") == "scram-sha-512"
    ]
    if scram:  # the SCRAM listener comes with the other half of this change (kafka.yaml)
        assert settings.kafka_bootstrap_servers == (
            f"{kafka['metadata']['name']}-kafka-bootstrap:{scram[0]['port']}"
        )
    assert settings.kafka_bootstrap_servers == KAFKA_SCRAM_BOOTSTRAP
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for url in (settings.redis_url, settings.mongo_url):
        parts = urlsplit(url)
        assert parts.hostname in services, f"{url}: no Service {parts.hostname}"
        assert parts.port in {p["port"] for p in services[parts.hostname]["spec"]["ports"]}
        assert parts.password and parts.password.startswith(PLACEHOLDER)
    assert settings.write_token is not None


def test_ray_dashboard_finds_grafana_and_prometheus() -> None:
    docs = main_docs()
    env = {e["name"]: e.get("value") for e in head_container(one(docs, "RayService"))["env"]}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for variable in ("RAY_GRAFANA_HOST", "RAY_PROMETHEUS_HOST"):
        parts = urlsplit(env[variable])
        assert parts.hostname in services, variable
        assert parts.port in {p["port"] for p in services[parts.hostname]["spec"]["ports"]}
    assert env["RAY_GRAFANA_IFRAME_HOST"].startswith("http")


def test_serve_config_is_config_yaml_and_valid_for_ray() -> None:
    config = load_config(REPO.config)
    text = one(main_docs(), "RayService")["spec"]["serveConfigV2"]
    assert isinstance(text, str)
    serve_config = yaml.safe_load(text)
    problems = kv.serve_config_problems(serve_config)
    assert not problems, "\n".join(problems)
    # config.yaml's applications, but for the Kubernetes overrides made in one place.
    overridden = copy.deepcopy(config["applications"])
    for deployment in overridden[0]["deployments"]:
        for key, value in KUBERNETES_OVERRIDES.get(deployment["name"], {}).items():
            if key in ("min_replicas", "max_replicas"):
                deployment["autoscaling_config"][key] = value
            else:
                deployment[key] = value
    assert serve_config["applications"] == overridden
    assert serve_config["http_options"] == {**config["http_options"], "host": "0.0.0.0"}
    assert {k: v for k, v in serve_config.items() if k not in ("http_options", "applications")} == {
        k: v for k, v in config.items() if k not in ("http_options", "applications")
    }
    for key in ("proxy_location", "grpc_options", "logging_config"):
        assert key in serve_config
    assert kv.serve_config_problems(config) == [], "config.yaml itself"


def test_the_head_waits_for_the_gcs_redis_before_ray_starts() -> None:
    head = one(main_docs(), "RayService")["spec"]["rayClusterConfig"]["headGroupSpec"]
    (wait,) = head["template"]["spec"]["initContainers"]
    assert wait["name"] == "wait-for-redis"
    assert wait["image"] == head_container(one(main_docs(), "RayService"))["image"]
    assert wait["command"][3:] == [GCS_REDIS_ADDRESS, "600"]


def run_wait_for_tcp(address: str, seconds: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WAIT_FOR_TCP, address, seconds],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_wait_ends_when_the_port_answers_and_fails_after_its_deadline() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        address = f"127.0.0.1:{listening.getsockname()[1]}"
        answered = run_wait_for_tcp(address, "30")
    assert (answered.returncode, answered.stdout.strip()) == (0, f"{address} answers")
    # The port is closed now: the container fails, naming the address, once its time is up.
    refused = run_wait_for_tcp(address, "1")
    assert refused.returncode == 1
    assert f"{address} did not answer in 1 s" in refused.stderr
