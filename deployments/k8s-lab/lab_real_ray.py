"""`make k8s-lab K8S_LAB_ARGS=--with-ray`: a real local Ray behind the head Service's name."""

from __future__ import annotations

import json
import os
import shutil

from lab_core import NAMESPACE, NETNS_ETC, RAY_TMP, REPO, RUN, Lab, LabError, log, section


def with_real_ray(lab: Lab) -> None:
    """Start a real Ray head (same token) in the namespace, point the head Service's name at it.

    KubeRay then PUTs serveConfigV2 to Ray's real REST API (`/api/serve/applications/`) with the
    token and reads back the application statuses. Ray runs in a PID namespace of its own
    (`unshare --pid --kill-child`): stopping it by its PID ends every process it started.
    """
    section("real Ray behind the head Service's name (--with-ray)")
    token_env = RUN / "checkout" / "deployments" / "k8s" / "ray-token" / "secrets.env"
    token = token_env.read_text().strip().split("=", 1)[1]
    shutil.rmtree(RAY_TMP, ignore_errors=True)
    lab.start(
        "ray",
        [
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            str(REPO / ".venv" / "bin" / "ray"),
            "start",
            "--head",
            "--block",
            "--port=6379",
            "--dashboard-host=127.0.0.1",
            "--dashboard-port=8265",
            "--num-cpus=2",
            "--disable-usage-stats",
            f"--temp-dir={RAY_TMP}",
        ],
        extra_env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token},
    )
    rc = lab.get_json("rayclusters", "-n", NAMESPACE)["items"][0]
    head = f"{rc['status']['head']['serviceName']}.{NAMESPACE}.svc.cluster.local"
    hosts = NETNS_ETC / "hosts"
    with hosts.open("r+") as f:  # in place: the bind mount of `ip netns exec` follows the inode
        f.seek(0, os.SEEK_END)
        f.write(f"127.0.0.1 {head}\n")
    log(f"{head} -> 127.0.0.1 (the namespace's hosts file)")

    def reported() -> bool:
        rs = lab.get_json("rayservice", "votes", "-n", NAMESPACE)
        active = rs.get("status", {}).get("activeServiceStatus", {})
        pending = rs.get("status", {}).get("pendingServiceStatus", {})
        return bool(active.get("applicationStatuses") or pending.get("applicationStatuses"))

    try:
        lab.wait_for("KubeRay to read application statuses from Ray", reported, 240, every_s=5)
    except LabError as exc:
        print(f"  (not reached: {exc})")
    rs = lab.get_json("rayservice", "votes", "-n", NAMESPACE).get("status", {})
    for cond in rs.get("conditions", []):
        print(f"rayservice condition {cond['type']}={cond['status']} ({cond.get('reason')})")
    for which in ("activeServiceStatus", "pendingServiceStatus"):
        apps = rs.get(which, {}).get("applicationStatuses", {})
        for app, status in apps.items():
            print(f"{which}: application {app}: {status.get('status')}")
            for dep, dstatus in status.get("serveDeploymentStatuses", {}).items():
                message = dstatus.get("message", "")
                print(f"  {dep}: {dstatus.get('status')} {message[:240]}")
    op_log = (RUN / "logs" / "kuberay-operator.log").read_text(errors="replace").splitlines()
    for line in op_log:
        if '"msg":"updateServeDeployment"' in line and "MULTI_APP json config" in line:
            entry = json.loads(line)
            print(f"operator {entry['ts']}: updateServeDeployment (PUT /api/serve/applications/)")
            print("  " + entry["MULTI_APP json config"][:300] + " ...")
    print(lab.kubectl("get", "svc", "-n", NAMESPACE), end="")
