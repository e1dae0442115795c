"""The lab's overlay (deployments/k8s-lab/overlay), the single-node set of the real node: it is
not stale, runs only images the lab builds and never pulls them, fits a 2-core node, and hands the
application the Kafka and MongoDB logins it reads.
"""

from __future__ import annotations

from typing import Any

import pytest

from deployments import manifests
from deployments.lab_images import cli, overlay, overlay_kafka, services
from deployments.lab_images.recipe import index
from devkit.k8s_validation import REPO, validate_manifest

LAB_CPU_BUDGET_MILLI = 1500  # of a 2-core node: the rest for its DNS, kube-proxy and the kubelet


def lab() -> list[dict[str, Any]]:
    return manifests.render_kustomization(overlay.OVERLAY, example_env_fallback=True).docs


def pod_specs(doc: dict[str, Any]) -> list[tuple[dict[str, Any], int]]:
    """(pod spec, how many pods run it) of every workload in a document."""
    if doc["kind"] == "RayService":
        cluster = doc["spec"]["rayClusterConfig"]
        found = [(cluster["headGroupSpec"]["template"]["spec"], 1)]
        found += [(g["template"]["spec"], g["replicas"]) for g in cluster["workerGroupSpecs"]]
        return found
    if doc["kind"] in ("StatefulSet", "Deployment", "Job"):
        return [(doc["spec"]["template"]["spec"], doc["spec"].get("replicas", 1))]
    return []


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for spec, _ in pod_specs(doc) for c in spec.get("containers", [])]


def test_the_overlay_is_not_stale() -> None:
    assert not overlay.stale(overlay.generated_files(REPO.root)), (
        "run `python -m deployments.lab_images.overlay`"
    )


def test_the_overlay_runs_only_images_the_lab_builds_and_never_pulls() -> None:
    docs = lab()
    used = {c["image"] for doc in docs for c in containers(doc)}
    assert used == set(index(cli.SPECS)), "every image of index.json, and nothing else"
    for doc in docs:
        for container in containers(doc):
            assert container["imagePullPolicy"] == "Never", (doc["metadata"]["name"], container)
    (rayservice,) = [d for d in docs if d["kind"] == "RayService"]
    cluster = rayservice["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is False, "its sidecar cannot reach the API server"
    assert "autoscalerOptions" not in cluster


def milli_cpu(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


def test_the_overlay_fits_a_two_core_node() -> None:
    docs = lab()
    total = 0
    for doc in docs:
        for pod_spec, count in pod_specs(doc):
            for container in pod_spec["containers"]:
                total += count * milli_cpu(container["resources"]["requests"]["cpu"])
    assert 0 < total <= LAB_CPU_BUDGET_MILLI, f"{total}m CPU requested"


def test_ray_gets_the_logical_cpus_serve_asks_for() -> None:
    """Two workers with 1 CPU each hold the 2 ingress replicas (0.5, one per node) and more."""
    (rayservice,) = [d for d in lab() if d["kind"] == "RayService"]
    (group,) = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert group["replicas"] >= 2
    assert float(group["rayStartParams"]["num-cpus"]) >= 0.5 + 0.25


def secret_keys(docs: list[dict[str, Any]]) -> dict[str, set[str]]:
    return {
        d["metadata"]["name"]: set(d.get("data") or {}) | set(d.get("stringData") or {})
        for d in docs
        if d["kind"] == "Secret"
    }


def env_refs(container: dict[str, Any]) -> dict[str, Any]:
    return {
        e["name"]: e.get("valueFrom", {}).get("secretKeyRef", e.get("value"))
        for e in container.get("env", [])
    }


def test_every_secret_a_pod_reads_is_generated_with_its_key() -> None:
    docs = lab()
    keys = secret_keys(docs)
    for doc in docs:
        for container in containers(doc):
            for ref in env_refs(container).values():
                if isinstance(ref, dict):
                    assert ref["key"] in keys.get(ref["name"], set()), (
                        doc["metadata"]["name"],
                        ref,
                    )


def test_kafka_gives_the_app_the_login_it_reads() -> None:
    """Bootstrap address, SASL mechanism, user and password Secret: as Strimzi would."""
    docs = lab()
    (rayservice,) = [d for d in docs if d["kind"] == "RayService"]
    app = env_refs(
        rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    )
    (broker,) = [
        d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "votes-kafka"
    ]
    broker_env = env_refs(only(broker["spec"]["template"]["spec"]["containers"]))

    host, port = app["VOTES_KAFKA_BOOTSTRAP_SERVERS"].split(":")
    services_by_name = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert int(port) in [p["port"] for p in services_by_name[host]["spec"]["ports"]]
    assert (
        services_by_name[host]["spec"]["selector"].items()
        <= broker["spec"]["template"]["metadata"]["labels"].items()
    )
    assert app["VOTES_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    start = (REPO.root / "deployments/lab_images/files/kafka-start.sh").read_text()
    assert f"sasl.enabled.mechanisms={app['VOTES_KAFKA_SASL_MECHANISM']}" in start
    assert f"SCRAM://:{port}" in start
    assert broker_env["KAFKA_USER_NAME"] == app["VOTES_KAFKA_SASL_USERNAME"]
    assert (
        broker_env["KAFKA_USER_PASSWORD"]
        == app["VOTES_KAFKA_SASL_PASSWORD"]
        == {
            "name": overlay_kafka.user_name(REPO.k8s / "kafka"),
            "key": "password",
        }
    )


def only(items: list[dict[str, Any]]) -> dict[str, Any]:
    (item,) = items
    return item


def test_ferretdb_serves_mongodb_s_service_and_url() -> None:
    docs, upstream = lab(), manifests.render_kustomization(REPO.k8s, example_env_fallback=True).docs

    def service(of: list[dict[str, Any]]) -> dict[str, Any]:
        return only(
            [d for d in of if d["kind"] == "Service" and d["metadata"]["name"] == "votes-mongo"]
        )

    assert service(docs) == service(upstream)
    (mongo,) = [
        d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "votes-mongo"
    ]
    container = only(mongo["spec"]["template"]["spec"]["containers"])
    assert container["image"] == services.FERRETDB.ref
    env = env_refs(container)
    # The user FerretDB creates is the one of VOTES_MONGO_URL (secrets.env.example's shape).
    example = manifests.parse_env_file(REPO.k8s / "secrets.env.example")
    assert f"mongodb://{env['FERRETDB_SETUP_USERNAME']}:" in example["VOTES_MONGO_URL"]
    assert example["VOTES_MONGO_URL"].endswith(
        f"/{env['FERRETDB_SETUP_DATABASE']}?authSource=votes"
    )
    assert env["FERRETDB_SETUP_PASSWORD"] == {"name": "votes-secrets", "key": "MONGO_APP_PASSWORD"}


def test_redis_keeps_its_arguments_and_probes() -> None:
    def redis(of: list[dict[str, Any]]) -> dict[str, Any]:
        (doc,) = [
            d for d in of if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "votes-redis"
        ]
        return dict(doc["spec"]["template"]["spec"])

    ours, upstream = (
        redis(lab()),
        redis(manifests.render_kustomization(REPO.k8s, example_env_fallback=True).docs),
    )
    for key in ("securityContext", "volumes"):
        assert ours[key] == upstream[key], key
    for lab_container, container in zip(
        ours["initContainers"] + ours["containers"],
        upstream["initContainers"] + upstream["containers"],
        strict=True,
    ):
        for key in ("command", "args", "env", "readinessProbe", "livenessProbe", "volumeMounts"):
            assert lab_container.get(key) == container.get(key), key
    # What files/redis-entrypoint.sh runs as is (the pod runs as the redis user already).
    assert only(ours["containers"])["args"][0] == "redis-server"


def test_every_overlay_object_validates() -> None:
    problems = [
        f"{d['kind']}/{d['metadata']['name']}: {p}" for d in lab() for p in validate_manifest(d)
    ]
    assert not problems, "\n".join(problems)


def test_the_deploy_cli_applies_the_overlay(capsys: pytest.CaptureFixture[str]) -> None:
    from deployments import deploy

    code = deploy.main(["apply", "--dry-run", "--kustomization", str(overlay.OVERLAY)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "StatefulSet/votes-kafka (votes)" in out and "RayService/votes (votes)" in out
    assert "Kafka/" not in out and "Gateway/" not in out
