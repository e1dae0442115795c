"""The load phase of the real node (deployments/k8s-lab/node_load.py): its pure parts.

The env files' values, the stores' URLs pointed at ClusterIPs, and the Ray pods' identities
compared across a pod loss (the reconciliation's arithmetic: test_node_counts.py).
"""

from __future__ import annotations

import lab
import node_load
import pytest


def test_env_value_is_the_text_after_the_first_equals_sign() -> None:
    text = "# comment\nVOTES_WRITE_TOKEN=abc=def\nOTHER=1\n"
    assert node_load.env_value(text, "VOTES_WRITE_TOKEN") == "abc=def"
    with pytest.raises(lab.LabError, match="MISSING"):
        node_load.env_value(text, "MISSING")


def test_a_store_url_gets_the_cluster_ip_in_place_of_the_service_name() -> None:
    url = "redis://votes-app:dummy@votes-redis:6379/0"
    assert (
        node_load.with_host(url, "votes-redis", "10.96.0.5")
        == "redis://votes-app:dummy@10.96.0.5:6379/0"
    )
    with pytest.raises(lab.LabError, match="votes-mongo is not the host"):
        node_load.with_host(url, "votes-mongo", "10.96.0.6")


def pod(name: str, node_type: str, uid: str, restarts: list[int]) -> dict[str, object]:
    return {
        "metadata": {"name": name, "uid": uid, "labels": {"ray.io/node-type": node_type}},
        "status": {"containerStatuses": [{"restartCount": r} for r in restarts]},
    }


def test_pod_ids_are_uid_and_restarts_of_one_node_type() -> None:
    pods = [
        pod("h", "head", "u0", [0]),
        pod("w1", "worker", "u1", [0, 1]),
        pod("w2", "worker", "u2", [2]),
    ]
    assert node_load.pod_ids(pods, "worker") == {"w1": ("u1", 1), "w2": ("u2", 2)}
    assert node_load.pod_ids(pods, "head") == {"h": ("u0", 0)}
    restarted = [pod("w1", "worker", "u1", [1, 1]), pod("w2", "worker", "u2", [2])]
    assert node_load.pod_ids(restarted, "worker") != node_load.pod_ids(pods, "worker")


def test_a_service_address_is_its_cluster_ip_or_a_headless_ones_ready_pod() -> None:
    def service(cluster_ip: str) -> dict[str, object]:
        return {"metadata": {"name": "votes-redis"}, "spec": {"clusterIP": cluster_ip}}

    assert node_load.address(service("10.96.0.7"), ["10.244.0.5"]) == "10.96.0.7"
    assert node_load.address(service("None"), ["10.244.0.5", "10.244.0.6"]) == "10.244.0.5"
    with pytest.raises(lab.LabError, match="headless Service votes-redis has no ready pod"):
        node_load.address(service("None"), [])
