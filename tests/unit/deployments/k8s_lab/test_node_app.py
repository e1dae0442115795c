"""The app phase of the real node (deployments/k8s-lab/node_app.py): its pure parts.

What counts as Ready and as a ready endpoint, and the overlay's env files: every Secret the
overlay generates gets a file, with throwaway values and never a template's change-me.
"""

from __future__ import annotations

from typing import Any

import node_app
import yaml


def test_every_env_file_the_overlay_names_is_written_without_placeholders() -> None:
    kustomization = yaml.safe_load((node_app.OVERLAY / "kustomization.yaml").read_text())
    named = {env for gen in kustomization["secretGenerator"] for env in gen["envs"]}
    files = node_app.overlay_env_files("VOTES_WRITE_TOKEN=abc\n", "auth_token=def\n")
    assert set(files) == named
    assert files["secrets.env"] == "VOTES_WRITE_TOKEN=abc\n"
    assert files["ray-token.env"] == "auth_token=def\n"
    assert all("change-me" not in text for text in files.values())
    again = node_app.overlay_env_files("", "")
    assert again["kafka-user.env"] != files["kafka-user.env"]  # a fresh password each run


def condition(kind: str, status: str) -> dict[str, Any]:
    return {"status": {"conditions": [{"type": kind, "status": status}]}}


def test_only_the_ready_condition_true_counts_as_ready() -> None:
    assert node_app.rayservice_ready(condition("Ready", "True"))
    assert not node_app.rayservice_ready(condition("Ready", "False"))
    assert not node_app.rayservice_ready(condition("UpgradeInProgress", "True"))
    assert not node_app.rayservice_ready({})  # no status yet


def endpoint_slice(service: str, *endpoints: tuple[str, bool]) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"kubernetes.io/service-name": service}},
        "endpoints": [
            {"addresses": [address], "conditions": {"ready": ready}} for address, ready in endpoints
        ],
    }


def test_ready_endpoints_are_the_ready_addresses_of_that_service_only() -> None:
    slices = [
        endpoint_slice("votes-serve-svc", ("10.244.0.11", True), ("10.244.0.10", False)),
        endpoint_slice("votes-serve-svc", ("10.244.0.12", True)),
        endpoint_slice("votes-head-svc", ("10.244.0.9", True)),
        {"metadata": {"labels": {"kubernetes.io/service-name": "empty"}}, "endpoints": None},
    ]
    assert node_app.ready_endpoints(slices, "votes-serve-svc") == ["10.244.0.11", "10.244.0.12"]
    assert node_app.ready_endpoints(slices, "votes-head-svc") == ["10.244.0.9"]
    assert node_app.ready_endpoints(slices, "empty") == []
    assert node_app.ready_endpoints(slices, "other") == []


def test_a_replica_line_is_told_from_a_proxy_line_naming_the_deployment() -> None:
    replica = "INFO 2026-12-08 03:44:52,898 votes_VoteIngress voh43d9b -- Finished initializing"
    proxy = (
        "INFO 2026-12-08 03:45:51,897 proxy 10.244.0.11 -- Got updated backend configs: "
        "[BackendConfig(app_name='votes', name='VoteIngress')]"
    )
    assert node_app.is_replica_line(replica)
    assert not node_app.is_replica_line(proxy)
    assert not node_app.is_replica_line("INFO 2026-12-08 03:45:51,897 votes_VotePersister x -- y")
