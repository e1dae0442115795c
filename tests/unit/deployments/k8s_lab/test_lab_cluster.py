"""The fake Nodes of `make k8s-lab` (deployments/k8s-lab/lab_cluster.py): pure parts."""

from __future__ import annotations

import lab_cluster


def test_a_fake_node_is_one_kwok_manages_with_room_for_the_whole_app() -> None:
    node = lab_cluster.node_doc("kwok-node-2")
    meta, status = node["metadata"], node["status"]
    # kwok runs with --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake.
    assert meta["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert meta["labels"]["kubernetes.io/hostname"] == "kwok-node-2"
    assert meta["labels"]["topology.kubernetes.io/zone"] == "lab-2"
    assert (
        status["allocatable"]
        == status["capacity"]
        == {"cpu": "16", "memory": "64Gi", "pods": "110"}
    )


def test_every_fake_node_is_in_a_zone_of_its_own() -> None:
    zones = {
        lab_cluster.node_doc(name)["metadata"]["labels"]["topology.kubernetes.io/zone"]
        for name in lab_cluster.NODES
    }
    assert len(zones) == len(lab_cluster.NODES)
