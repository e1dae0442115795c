"""The kustomize layouts (deployments/k8s, its optional/ and kuberay/): every part present and wired
together, and no credentials committed.

Offline and fast: no cluster, no kubectl (shared helpers: devkit/k8s_validation/).
"""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from deployments.manifests.kustomize import find_kustomization, parse_env_file
from deployments.manifests.names import PROMETHEUS_URL, RAY_AUTH_TOKEN_KEY, SECRET_ENV_KEYS
from deployments.manifests.sources import load_config
from devkit import k8s_validation as kv
from devkit.k8s_validation import PLACEHOLDER, REPO, main_docs, one, rendered


def test_layout_has_every_part() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in main_docs()}
    for wanted in [
        ("Namespace", "votes"),
        ("ConfigMap", "votes-config"),
        ("Secret", "votes-secrets"),
        ("Kafka", "votes"),
        ("KafkaNodePool", "dual-role"),
        ("KafkaTopic", "votes"),
        ("KafkaTopic", "votes.dlq"),
        ("StatefulSet", "votes-redis"),
        ("Service", "votes-redis"),
        ("StatefulSet", "votes-mongo"),
        ("Service", "votes-mongo"),
        ("Deployment", "votes-grafana"),
        ("Service", "votes-grafana"),
        ("Deployment", "votes-prometheus"),
        ("RayService", "votes"),
        ("Gateway", "votes"),
        ("HTTPRoute", "votes-http"),
        ("GRPCRoute", "votes-grpc"),
        ("Secret", "votes-ray-token"),
    ]:
        assert wanted in kinds, f"{wanted} missing from deployments/k8s"
    assert len(kinds) == len(main_docs()), "two objects with the same kind and name"


def test_every_namespaced_object_is_in_votes() -> None:
    for doc in main_docs() + rendered("deployments/k8s/optional"):
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == "votes"
        else:
            assert doc["metadata"].get("namespace") == "votes", kv.name_of(doc)
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "votes", kv.name_of(doc)


def test_no_manifest_file_is_left_out_of_a_kustomization() -> None:
    """A resource file nobody lists would silently never be applied."""
    listed: set[Path] = set()
    for directory in [REPO.k8s, REPO.k8s / "optional", REPO.kuberay]:
        spec = yaml.safe_load(find_kustomization(directory).read_text())
        listed |= {(directory / entry).resolve() for entry in spec.get("resources") or []}
        for generator in (spec.get("configMapGenerator") or []) + (
            spec.get("secretGenerator") or []
        ):
            for entry in generator.get("files") or []:
                listed.add((directory / (entry.partition("=")[2] or entry)).resolve())
    for path in sorted(
        [*REPO.k8s.rglob("*.yaml"), *REPO.k8s.rglob("*.yml"), *REPO.kuberay.glob("*.yaml")]
    ):
        if path.name.startswith("kustomization"):
            continue
        docs = kv.load_yaml_docs(path)
        if any(
            isinstance(d, dict) and "apiVersion" in d and "kind" in d and "metadata" in d
            for d in docs
        ):
            assert path.resolve() in listed, f"{path.relative_to(REPO.root)} is in no kustomization"


def test_kafka_is_kraft_with_three_dual_role_nodes() -> None:
    docs = main_docs()
    kafka, pool = one(docs, "Kafka"), one(docs, "KafkaNodePool")
    assert kafka["metadata"]["annotations"] == {
        "strimzi.io/node-pools": "enabled",
        "strimzi.io/kraft": "enabled",
    }
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert sorted(pool["spec"]["roles"]) == ["broker", "controller"]
    assert pool["spec"]["replicas"] == 3
    volumes = pool["spec"]["storage"]["volumes"]
    assert [v["type"] for v in volumes] == ["persistent-claim"]
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2
    assert "topicOperator" in kafka["spec"]["entityOperator"]


def test_topics_match_the_settings_and_the_persister_pool() -> None:
    docs = main_docs()
    config = load_config(REPO.config)
    data = one(docs, "ConfigMap", "votes-config")["data"]
    topics = {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaTopic"}
    assert set(topics) == {data["VOTES_KAFKA_TOPIC"], data["VOTES_KAFKA_DLQ_TOPIC"]}
    kafka_name = one(docs, "Kafka")["metadata"]["name"]
    for topic in topics.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka_name
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["min.insync.replicas"] == 2
    votes_topic = topics[data["VOTES_KAFKA_TOPIC"]]["spec"]
    assert votes_topic["partitions"] == 6
    persister = next(
        d for d in config["applications"][0]["deployments"] if d["name"] == "VotePersister"
    )
    most = (persister.get("autoscaling_config") or {}).get(
        "max_replicas", persister.get("num_replicas", 1)
    )
    assert int(most) <= votes_topic["partitions"], "more persister replicas than partitions"


def test_stores_are_durable() -> None:
    docs = main_docs()
    redis = one(docs, "StatefulSet", "votes-redis")["spec"]
    args = redis["template"]["spec"]["containers"][0]["args"]
    config = one(docs, "ConfigMap", "votes-redis-config")["data"]["redis.conf"].splitlines()
    assert args == ["redis-server", "/etc/redis/redis.conf"]
    assert "appendonly yes" in config
    assert "appendfsync always" in config
    assert redis["volumeClaimTemplates"]
    mongo = one(docs, "StatefulSet", "votes-mongo")["spec"]
    assert mongo["template"]["spec"]["containers"][0]["image"].startswith("mongo:7")
    assert mongo["volumeClaimTemplates"]
    assert one(docs, "Service", "votes-mongo")["spec"]["clusterIP"] == "None"
    for statefulset in (redis, mongo):
        assert one(docs, "Service", statefulset["serviceName"])


def test_grafana_provisioning_is_mounted_and_valid() -> None:
    docs = main_docs()
    grafana = one(docs, "Deployment", "votes-grafana")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in grafana["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in grafana["volumes"]}
    assert mounts["datasources"] == "/etc/grafana/provisioning/datasources"
    assert mounts["dashboard-providers"] == "/etc/grafana/provisioning/dashboards"
    config_maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    for name in ("datasources", "dashboard-providers"):
        assert volumes[name]["configMap"]["name"] in config_maps
    providers = yaml.safe_load(
        config_maps["votes-grafana-dashboard-providers"]["data"]["dashboards.yaml"]
    )
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == mounts["dashboards"]
    assert volumes["dashboards"]["configMap"]["optional"] is True
    datasources = yaml.safe_load(
        config_maps["votes-grafana-datasources"]["data"]["datasources.yaml"]
    )
    by_type = {d["type"]: d for d in datasources["datasources"]}
    assert set(by_type) == {"prometheus", "redis-datasource"}
    prometheus = by_type["prometheus"]
    assert prometheus["url"] == PROMETHEUS_URL and prometheus["name"] == "Prometheus"
    env = {e["name"] for e in grafana["containers"][0]["env"]}
    assert "REDIS_PASSWORD" in env
    scrape = yaml.safe_load(config_maps["votes-prometheus-config"]["data"]["prometheus.yml"])
    assert scrape["scrape_configs"][0]["kubernetes_sd_configs"][0]["namespaces"] == {
        "own_namespace": True
    }
    assert (REPO.k8s / "grafana" / "dashboards").is_dir()


_SECRET_KEY = re.compile(r"password|token|secret|_url$|auth", re.IGNORECASE)


def _looks_placeholder(value: str) -> bool:
    return value == "" or PLACEHOLDER in value.lower()


def test_secret_template_has_only_placeholders() -> None:
    values = parse_env_file(REPO.k8s / "secrets.env.example")
    assert set(SECRET_ENV_KEYS) <= set(values)
    # The Ray token in a Secret of its own (votes-ray-token), never in votes-secrets.
    assert RAY_AUTH_TOKEN_KEY not in values
    token = parse_env_file(REPO.k8s / "ray-token" / "secrets.env.example")
    assert set(token) == {RAY_AUTH_TOKEN_KEY}
    values |= token
    for key, value in values.items():
        if _SECRET_KEY.search(key):
            assert _looks_placeholder(value), (
                f"secrets.env.example {key} looks like a real credential"
            )
        parts = urlsplit(value)
        if parts.scheme and parts.password is not None:
            assert _looks_placeholder(parts.password), key


def test_no_secret_or_password_in_any_committed_manifest() -> None:
    files = [
        p
        for p in [
            *REPO.k8s.rglob("*"),
            *REPO.kuberay.rglob("*"),
            REPO.root / "Dockerfile",
            REPO.root / "docs" / "kubernetes.md",
        ]
        if p.is_file() and p.name != "secrets.env"
    ]
    url_with_password = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/:@]*:([^\s/@]+)@", re.IGNORECASE)
    for path in files:
        text = path.read_text()
        for password in url_with_password.findall(text):
            assert _looks_placeholder(password) or password.startswith(("<", "$")), (
                f"{path}: {password}"
            )
        if path.suffix in (".yaml", ".yml"):
            for doc in kv.load_yaml_docs(path):
                if isinstance(doc, dict) and doc.get("kind") == "Secret":
                    for value in (doc.get("stringData") or {}).values():
                        assert _looks_placeholder(str(value)), path
                    for value in (doc.get("data") or {}).values():
                        assert _looks_placeholder(base64.b64decode(value).decode()), path


def test_real_secrets_stay_out_of_git_and_the_image() -> None:
    assert "secrets.env" in (REPO.k8s / ".gitignore").read_text().split()
    tracked = subprocess.run(
        ["git", "ls-files", "deployments/k8s"],
        check=True,
        cwd=REPO.root,
        capture_output=True,
        text=True,
    )
    assert "deployments/k8s/secrets.env\n" not in tracked.stdout + "\n"
    rules = [
        line
        for line in (REPO.root / ".dockerignore").read_text().splitlines()
        if line and line[0] != "#"
    ]
    assert rules[0] == "*", ".dockerignore must be an allow-list (everything excluded first)"
    assert not any(rule.startswith(("!deployments", "!.", "!tests")) for rule in rules)
