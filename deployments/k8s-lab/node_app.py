"""The app on the real node: the lab overlay applied with the deploy CLI, the RayService Ready.

node_lab.py --app calls run_app() once the node is Ready. It applies
deployments/k8s-lab/overlay (FerretDB, a KRaft Kafka, the RayService) from a copy of the
checkout with throwaway secrets (lab.lab_checkout), points the namespace's resolver at the
cluster DNS so the KubeRay operator (a process in the namespace) reaches the head's dashboard by
its Service name, waits for the RayService's Ready condition, checks the Serve and head Services
have ready endpoints, and sends one vote through the serve Service's ClusterIP.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import lab
import node_config as nc

OVERLAY = lab.REPO / "deployments" / "k8s-lab" / "overlay"
SERVE_SERVICE = "votes-serve-svc"
HEAD_SERVICE = "votes-head-svc"
KAFKA_SETUP_JOB = "votes-kafka-setup"
READY_TIMEOUT_S = 1200  # images are large and Ray starts slowly on 2 busy cores
RAY_WORKERS = 2  # the overlay's worker group, fixed: no autoscaler in the lab
VOTE_TIMEOUT_S = 180
VOTE = {"name": "k8s-lab", "album": "real node", "year": 2026, "rank": 1}
SERVE_LOGS = "serve-logs"  # the Ray pods' log sidecar (deployments/manifests/pods.py)
# A line an ingress replica logged (Serve's format: level, time, component, replica id, --).
REPLICA_LINE = re.compile(r"^[A-Z]+ \S+ \S+ votes_VoteIngress \S+ -- ")


def overlay_env_files(k8s_secrets: str, ray_token: str) -> dict[str, str]:
    """The overlay's env files: the lab checkout's throwaway secrets plus Kafka's passwords."""
    return {
        "secrets.env": k8s_secrets,
        "ray-token.env": ray_token,
        "kafka-user.env": f"password={secrets.token_hex(16)}\n",
        "kafka-admin.env": f"password={secrets.token_hex(16)}\n",
    }


def app_checkout() -> Path:
    """lab.lab_checkout() with the overlay beside it, its env files filled with throwaway values."""
    root = lab.lab_checkout()
    k8s = root / "deployments" / "k8s"
    target = root / "deployments" / "k8s-lab" / "overlay"
    shutil.copytree(OVERLAY, target, ignore=shutil.ignore_patterns("*.env"))
    files = overlay_env_files(
        (k8s / "secrets.env").read_text(), (k8s / "ray-token" / "secrets.env").read_text()
    )
    for name, text in files.items():
        (target / name).write_text(text)
    return target


def use_cluster_dns() -> None:
    """The namespace's resolv.conf names CoreDNS: the operator resolves `*.svc.cluster.local`."""
    resolv = lab.NETNS_ETC / "resolv.conf"
    with resolv.open("w") as f:  # in place: the bind mounts of `ip netns exec` follow the inode
        f.write(f"nameserver {nc.CLUSTER_DNS_IP}\noptions timeout:1 attempts:2\n")
    lab.log(f"{resolv}: nameserver {nc.CLUSTER_DNS_IP} (cluster names only)")


def deploy(overlay: Path) -> None:
    cmd = lab.in_netns(
        [
            str(lab.PYTHON),
            "-m",
            "deployments.deploy",
            "apply",
            "--namespace",
            lab.NAMESPACE,
            "--kubeconfig",
            str(lab.KUBECONFIG),
            "--repo",
            str(overlay.parents[2]),
            "--kustomization",
            str(overlay),
            "--timeout",
            "5",
        ]
    )
    lab.log("python -m deployments.deploy apply --kustomization deployments/k8s-lab/overlay")
    proc = subprocess.run(
        cmd, cwd=lab.REPO, capture_output=True, text=True, env=lab.lab_env(), check=False
    )
    (lab.RUN / "logs" / "deploy.log").write_text(proc.stdout + proc.stderr)
    applied = [line for line in proc.stdout.splitlines() if line.startswith("applied ")]
    lab.log(f"{len(applied)} objects applied (all lines in .k8s-lab/run/logs/deploy.log)")
    if proc.returncode not in (0, 1):  # 1: applied, but not RUNNING within --timeout
        raise lab.LabError(f"deploy apply failed (exit {proc.returncode}):\n{proc.stderr.strip()}")


def rayservice_ready(service: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in service.get("status", {}).get("conditions", [])
    )


def ready_endpoints(slices: list[dict[str, Any]], service: str) -> list[str]:
    """The addresses of the Service's ready endpoints, from its EndpointSlices."""
    return sorted(
        address
        for s in slices
        if s["metadata"].get("labels", {}).get("kubernetes.io/service-name") == service
        for endpoint in s.get("endpoints") or []
        if endpoint.get("conditions", {}).get("ready")
        for address in endpoint["addresses"]
    )


def show(the_lab: lab.Lab) -> None:
    """What the lab sees: pods (phase, restarts), the RayService, Services and endpoints."""
    ns = ("-n", lab.NAMESPACE)
    for what in ("pods -o wide", "rayservice,raycluster", "svc", "endpointslices"):
        print(the_lab.kubectl("get", *what.split(), *ns, check=False), end="")


def show_failing_containers(the_lab: lab.Lab) -> None:
    """The last log lines of every container that is not ready or has restarted."""
    for pod in the_lab.get_json("pods", "-n", lab.NAMESPACE)["items"]:
        name = pod["metadata"]["name"]
        for status in pod.get("status", {}).get("containerStatuses") or []:
            finished = status.get("state", {}).get("terminated", {}).get("exitCode") == 0
            if (status.get("ready") or finished) and not status.get("restartCount"):
                continue  # running fine, or a Job's container that ended well
            state = json.dumps(status.get("state"))[:300]
            print(f"--- {name}/{status['name']}: restarts {status.get('restartCount')}, {state}")
            for previous in (["--previous"] if status.get("restartCount") else []) + [[]]:
                logs = the_lab.kubectl(
                    "logs",
                    name,
                    "-c",
                    status["name"],
                    "-n",
                    lab.NAMESPACE,
                    "--tail=25",
                    *previous,
                    check=False,
                    quiet=True,
                )
                print("  | " + "\n  | ".join(logs.splitlines() or ["(no log)"]))
    events = the_lab.kubectl(
        "get", "events", "-n", lab.NAMESPACE, "--sort-by=.lastTimestamp", check=False, quiet=True
    )
    print("last events:\n  " + "\n  ".join(events.splitlines()[-20:]))


def route_services_from_namespace() -> None:
    """The namespace's own processes reach ClusterIPs: pods route them through their default
    route, the namespace had no route for the range (curl: "Couldn't connect", after 0 ms)."""
    route = ["ip", "route", "replace", nc.SERVICE_CIDR, "dev", nc.BRIDGE, "src", nc.POD_GATEWAY]
    lab.sh(*lab.in_netns(route))
    lab.log(f"route {nc.SERVICE_CIDR} dev {nc.BRIDGE}: kube-proxy's DNAT then picks a pod")


def kafka_setup_done(the_lab: lab.Lab) -> bool:
    job = the_lab.get_json("job", KAFKA_SETUP_JOB, "-n", lab.NAMESPACE)
    return bool(job.get("status", {}).get("succeeded"))


def vote_once(the_lab: lab.Lab) -> list[str]:
    """POST one vote to the serve Service's ClusterIP from the namespace; /results counts it."""
    route_services_from_namespace()
    # A produce before the Job made the ACLs is refused, and the ingress' producer stays failed.
    the_lab.wait_for(
        "the Job votes-kafka-setup (topics, ACLs)",
        lambda: kafka_setup_done(the_lab),
        VOTE_TIMEOUT_S,
        every_s=3,
    )
    service = the_lab.get_json("service", SERVE_SERVICE, "-n", lab.NAMESPACE)
    base = f"http://{service['spec']['clusterIP']}:8000"
    token = next(
        line.split("=", 1)[1]
        for line in (lab.RUN / "checkout/deployments/k8s/secrets.env").read_text().splitlines()
        if line.startswith("VOTES_WRITE_TOKEN=")
    )
    vote = {**VOTE, "vote_id": str(uuid.uuid4())}

    def curl(*args: str) -> str:
        proc = subprocess.run(
            lab.in_netns(["curl", "-sS", "-m", "30", *args]),
            capture_output=True,
            text=True,
            check=False,
        )
        return proc.stdout + proc.stderr

    # kube-proxy and the Kafka setup Job may still be catching up: retry until a deadline.
    deadline, printed = time.monotonic() + VOTE_TIMEOUT_S, ""
    while True:
        answer = curl(
            "-X",
            "POST",
            f"{base}/votes",
            "-H",
            f"Authorization: Bearer {token}",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps(vote),
            "-w",
            " %{http_code}",
        ).strip()
        if answer != printed:  # each new answer once: the retries repeat themselves
            print(f"POST {base}/votes -> {answer[:300]}")
            printed = answer
        if answer.endswith("202"):
            break
        if time.monotonic() > deadline:
            return [f"the vote through {base} was not accepted: {answer[:300]}"]
        time.sleep(5)
    deadline, results = time.monotonic() + VOTE_TIMEOUT_S, ""
    while time.monotonic() < deadline:
        results = curl(f"{base}/results")
        try:
            counted = json.loads(results).get("by_band", {}).get(VOTE["name"], 0)
        except json.JSONDecodeError:
            counted = 0
        if counted >= 1:
            print(f"GET {base}/results -> {results.strip()[:300]}")
            return []
        time.sleep(2)
    return [f"the vote was accepted but /results did not count it: {results.strip()[:300]}"]


def run_app(the_lab: lab.Lab) -> list[str]:
    """Deploy, wait for the RayService Ready, show and check; the failures (empty: all good)."""
    lab.section("the app on the real node (deployments/k8s-lab/overlay)")
    use_cluster_dns()
    deploy(app_checkout())
    started = time.monotonic()
    last_note = 0.0

    def ready() -> bool:
        nonlocal last_note
        services = the_lab.get_json("rayservice", "-n", lab.NAMESPACE)["items"]
        if time.monotonic() - last_note > 60:
            last_note = time.monotonic()
            pods = the_lab.kubectl("get", "pods", "-n", lab.NAMESPACE, "--no-headers", quiet=True)
            lab.log(
                f"waiting for the RayService ({last_note - started:.0f}s):\n  "
                + "\n  ".join(pods.splitlines())
            )
        pods = the_lab.get_json("pods", "-n", lab.NAMESPACE, "-l", "ray.io/node-type")["items"]
        ray_ready = len(pods) == 1 + RAY_WORKERS and all(lab.pod_ready(p) for p in pods)
        return ray_ready and bool(services) and all(rayservice_ready(s) for s in services)

    failures: list[str] = []
    try:
        the_lab.wait_for(
            "the RayService Ready and its head and 2 workers Ready",
            ready,
            READY_TIMEOUT_S,
            every_s=5,
        )
        lab.log(f"RayService Ready, head and workers Ready in {time.monotonic() - started:.0f}s")
    except lab.LabError as exc:
        failures.append(str(exc))
    show(the_lab)
    slices = the_lab.get_json("endpointslices", "-n", lab.NAMESPACE)["items"]
    for service in (SERVE_SERVICE, HEAD_SERVICE):
        addresses = ready_endpoints(slices, service)
        print(f"{service}: ready endpoints {addresses}")
        if not addresses:
            failures.append(f"{service} has no ready endpoint")
    head = the_lab.kubectl(
        "get", "pods", "-n", lab.NAMESPACE, "-l", "ray.io/node-type=head", "-o", "name"
    ).split()
    for pod in head[:1]:
        limit = the_lab.kubectl(
            "exec",
            "-n",
            lab.NAMESPACE,
            pod,
            "-c",
            "ray-head",
            "--",
            "sh",
            "-c",
            "ulimit -Sn; ulimit -Hn",
            check=False,
        )
        print(f"open files in {pod} (soft, hard): {limit.split()}")
    if not failures:
        try:
            failures = vote_once(the_lab) or replica_logs_in_kubectl_logs(the_lab)
        except lab.LabError as exc:
            failures = [str(exc)]
    if failures:
        show_failing_containers(the_lab)
    return failures


def is_replica_line(line: str) -> bool:
    return REPLICA_LINE.match(line) is not None


def replica_logs_in_kubectl_logs(the_lab: lab.Lab) -> list[str]:
    """The workers' log sidecar shows their Serve replicas' lines in `kubectl logs`."""
    labels = the_lab.get_json("namespace", lab.NAMESPACE)["metadata"].get("labels", {})
    print(f"pod security: enforce={labels.get('pod-security.kubernetes.io/enforce')}")
    workers = the_lab.kubectl(
        "get", "pods", "-n", lab.NAMESPACE, "-l", "ray.io/node-type=worker", "-o", "name"
    ).split()
    found: list[str] = []

    def replica_lines() -> bool:
        found.clear()
        for pod in workers:
            text = the_lab.kubectl(
                "logs", "-n", lab.NAMESPACE, pod, "-c", SERVE_LOGS, "--tail=2000", quiet=True
            )
            found.extend(line for line in text.splitlines() if is_replica_line(line))
        return bool(found)

    try:
        the_lab.wait_for(f"replica lines in kubectl logs -c {SERVE_LOGS}", replica_lines, 60)
    except lab.LabError as exc:
        return [str(exc)]
    print(f"kubectl logs -c {SERVE_LOGS} of the workers: {len(found)} ingress replica lines, e.g.")
    print(f"  {found[-1][:160]}")
    return []
