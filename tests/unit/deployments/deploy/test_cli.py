"""deployments.deploy.cli: the dry run needs no cluster (nor a kubeconfig), refuses the placeholder
image, and every error says what to do.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deployments.deploy.guards import refuse_placeholder_image
from deployments.deploy.objects import DeployError
from devkit import k8s_validation as kv
from devkit.k8s_validation import PLACEHOLDER, REPO, main_docs, one


def _run_deploy(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env |= {"KUBECONFIG": str(tmp_path / "no-such-kubeconfig"), "HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "deployments.deploy", *args],
        check=False,
        cwd=REPO.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dry_run_lists_the_objects_without_a_kubeconfig(tmp_path: Path) -> None:
    result = _run_deploy(
        tmp_path, "apply", "--dry-run", "--namespace", "votes", "--image", "example.org/votes:1"
    )
    assert result.returncode == 0, result.stderr
    assert "no cluster contacted" in result.stdout
    assert "RayService/votes (votes)" in result.stdout
    listed = re.findall(r"^\s+\d+\. (\S+)", result.stdout, re.MULTILINE)
    assert listed[0] == "Namespace/votes" and listed[-3:] == [
        "Gateway/votes",
        "HTTPRoute/votes-http",
        "GRPCRoute/votes-grpc",
    ]
    assert listed.index("Secret/votes-ray-token") < listed.index("RayService/votes")
    assert (
        listed.index("Secret/votes-secrets")
        < listed.index("Kafka/votes")
        < listed.index("StatefulSet/votes-redis")
        < listed.index("StatefulSet/votes-mongo")
        < listed.index("Deployment/votes-grafana")
        < listed.index("RayService/votes")
    )


def test_dry_run_verbose_prints_yaml_without_secret_values(tmp_path: Path) -> None:
    result = _run_deploy(
        tmp_path,
        "apply",
        "--dry-run",
        "--verbose",
        "--namespace",
        "staging",
        "--image",
        "registry.example/votes:dev",
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout.split("\n---\n", 1)[1]) if d]
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"staging"}
    assert one(docs, "Namespace")["metadata"]["name"] == "staging"
    for secret in (d for d in docs if d["kind"] == "Secret"):
        assert set(secret["data"].values()) == {"<redacted>"}
    assert PLACEHOLDER not in result.stdout
    images = {c["image"] for c in kv.containers_of(one(docs, "RayService"))}
    assert images == {"registry.example/votes:dev"}


def test_apply_refuses_the_placeholder_image_and_says_how_to_set_one(tmp_path: Path) -> None:
    for args in ([], ["--image", "ghcr.io/votes-contest/votes:0.2.0"]):
        result = _run_deploy(tmp_path, "apply", "--dry-run", "--namespace", "votes", *args)
        assert result.returncode == 2, result.stdout
        assert "is a placeholder" in result.stderr and "Traceback" not in result.stderr
        assert "--image REGISTRY/votes:TAG" in result.stderr
        assert "images:" in result.stderr and "newName: REGISTRY/votes" in result.stderr
        assert "docker build" in result.stderr
    # status and delete need no image of yours.
    assert _run_deploy(tmp_path, "delete", "--dry-run").returncode == 0
    # kustomize's images: override counts as much as --image.
    docs = kv.render_layout(REPO.k8s, images={"ghcr.io/votes-contest/votes": "r.example/v:2"}).docs
    refuse_placeholder_image(docs)
    with pytest.raises(DeployError, match="placeholder"):
        refuse_placeholder_image(main_docs())


def test_gateway_class_is_a_parameter(tmp_path: Path) -> None:
    result = _run_deploy(
        tmp_path,
        "apply",
        "--dry-run",
        "-v",
        "--image",
        "r.example/v:1",
        "--gateway-class",
        "cilium",
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout.split("\n---\n", 1)[1]) if d]
    assert one(docs, "Gateway")["spec"]["gatewayClassName"] == "cilium"
    assert one(main_docs(), "Gateway")["spec"]["gatewayClassName"] == "eg"


def test_without_a_kubeconfig_the_cli_says_how_to_point_at_a_cluster(tmp_path: Path) -> None:
    result = _run_deploy(tmp_path, "status", "--namespace", "votes")
    assert result.returncode == 2
    assert "no Kubernetes cluster configured" in result.stderr
    assert "--kubeconfig" in result.stderr and "KUBECONFIG" in result.stderr
    assert "Traceback" not in result.stderr


def test_outside_a_checkout_the_cli_names_the_missing_config_yaml(tmp_path: Path) -> None:
    result = _run_deploy(tmp_path, "apply", "--dry-run", "--repo", str(tmp_path))
    assert result.returncode == 2
    assert f"no config.yaml in {tmp_path.resolve()}" in result.stderr
    assert "Traceback" not in result.stderr
