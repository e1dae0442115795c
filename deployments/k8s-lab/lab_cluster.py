"""The cluster's Nodes and volumes in `make k8s-lab`: kwok, its 3 fake Nodes, hostPath volumes.

kwok runs with its own stage files (node/fast, node/heartbeat-with-lease, pod/fast): it keeps
the fake Nodes Ready and marks their pods Running and Ready. No provisioner runs, so the PVCs are
bound to hostPath PersistentVolumes in .k8s-lab/run/volumes (`make k8s-node` uses them too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab_core import BIN, KUBECONFIG, RUN, Lab, apply_docs, log

NODES = ("kwok-node-0", "kwok-node-1", "kwok-node-2")
PV_COUNT = 6


def start_kwok(lab: Lab, paths: dict[str, str]) -> None:
    stages = Path(paths["kwok_module"]) / "kustomize" / "stage"
    configs = [
        stages / "node" / "fast" / "node-initialize.yaml",
        stages / "node" / "heartbeat-with-lease" / "node-heartbeat-with-lease.yaml",
        *sorted((stages / "pod" / "fast").glob("pod-*.yaml")),
    ]
    lab.start(
        "kwok",
        [
            str(BIN / "kwok"),
            f"--kubeconfig={KUBECONFIG}",
            *(f"--config={c}" for c in configs),
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-lease-duration-seconds=40",
            "--server-address=127.0.0.1:10247",
            "--cidr=10.244.0.1/16",
            "--node-ip=10.244.255.1",
        ],
    )


def node_doc(name: str) -> dict[str, Any]:
    resources = {"cpu": "16", "memory": "64Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                "topology.kubernetes.io/zone": f"lab-{name[-1]}",
            },
        },
        "spec": {},
        "status": {
            "allocatable": resources,
            "capacity": resources,
        },
    }


def pv_doc(index: int) -> dict[str, Any]:
    path = RUN / "volumes" / f"pv-{index}"
    path.mkdir(parents=True, exist_ok=True)
    # hostPath volumes take no fsGroup: writable by every uid, for the pods of the `restricted`
    # namespace, which run as their images' non-root users (sticky, like /tmp).
    path.chmod(0o1777)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"lab-pv-{index}", "labels": {"k8s-lab": "true"}},
        "spec": {
            "capacity": {"storage": "50Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "",
            "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
        },
    }


def make_nodes_and_volumes(lab: Lab) -> None:
    apply_docs(lab, [node_doc(n) for n in NODES], "nodes")

    def ready() -> bool:
        nodes = lab.get_json("nodes")["items"]
        return len(nodes) == len(NODES) and all(
            any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n["status"].get("conditions", [])
            )
            for n in nodes
        )

    lab.wait_for("the fake Nodes to be Ready (kwok)", ready, timeout_s=60)
    for node in NODES:  # pods stay Pending behind it; the node controller may be slow to lift it
        lab.kubectl(
            "taint",
            "node",
            node,
            "node.kubernetes.io/not-ready:NoSchedule-",
            check=False,
            quiet=True,
        )
    log(f"{len(NODES)} fake Nodes Ready (cpu 16, memory 64Gi, pods 110), not-ready taint removed")
    apply_docs(lab, [pv_doc(i) for i in range(PV_COUNT)], "volumes")
    log(f"{PV_COUNT} hostPath PersistentVolumes (no provisioner here)")
