"""KubeRay in the lab: the CRDs (RayJob from the operator's module, the rest vendored) and the
operator itself, run as a process in the namespace against the lab's API server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab_core import BIN, REPO, Lab, log

VENDORED_CRDS = REPO / "devkit" / "k8s_schemas"


def conditions(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj.get("status", {}).get("conditions") or []


def apply_crds(lab: Lab, paths: dict[str, str]) -> None:
    bases = Path(paths["kuberay_module"]) / "config" / "crd" / "bases"
    files = [bases / "ray.io_rayjobs.yaml", *sorted(VENDORED_CRDS.rglob("*.yaml"))]
    for crd in files:
        lab.kubectl("apply", "--server-side", "-f", str(crd))

    def established() -> bool:
        return all(
            any(c["type"] == "Established" and c["status"] == "True" for c in conditions(crd))
            for crd in lab.get_json("crd")["items"]
        )

    # Not `kubectl wait`: it fails at once on a CRD whose status is not written yet (busy machine).
    lab.wait_for("the CRDs to be Established", established, timeout_s=60)
    log(
        f"{len(files)} CRDs established: RayJob from KubeRay v1.6.2's module, the rest vendored "
        f"({VENDORED_CRDS.relative_to(REPO)})"
    )


def start_operator(lab: Lab) -> None:
    lab.start(
        "kuberay-operator",
        [
            str(BIN / "kuberay-operator"),  # reads KUBECONFIG (lab_env)
            "--metrics-addr=127.0.0.1:18080",
            "--health-probe-bind-address=127.0.0.1:18081",
            "--enable-leader-election=false",
        ],
    )
