#!/usr/bin/env python3
"""The lab's control plane plus one real node, proven with real containers; then teardown.

    python deployments/k8s-lab/node_lab.py [--app [--load [--pod-loss]]] [--keep-seconds N]
                                                                   (root; after build.py)

Starts what lab.py starts except kwok and its fake Nodes (a pod must not land on a fake node
here), then node.py's real node (containerd, kubelet, kube-proxy, CoreDNS). It proves the node
with images built on this machine: a Deployment of 2 busybox httpd pods behind a Service, and a
client pod that resolves the Service's name through the cluster DNS and fetches from its
ClusterIP. With --app it then deploys the app (node_app.py): the RayService Ready, one vote
through the serve Service. With --load (node_load.py) the project's locustfile then loads the
serve Service and the stores reconcile exactly; --pod-loss adds a run that loses a worker pod
and one that loses the head pod. Teardown stops everything by PID, also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lab
import node
import node_app
import node_config as nc
import node_load
import node_teardown
from node_images import BUSYBOX_IMAGE

TEST_NAMESPACE = "lab-node-test"
SERVICE = "hello"
SERVICE_NAME = f"{SERVICE}.{TEST_NAMESPACE}.svc.{nc.CLUSTER_DOMAIN}"
REQUESTS = 16
LAB_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


def busybox_container(name: str, script: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": BUSYBOX_IMAGE,
        "imagePullPolicy": "Never",  # built here; there is no registry to pull from
        "command": ["/bin/sh", "-c", script],
    }


def proof_docs() -> list[dict[str, Any]]:
    """The Deployment (2 httpd pods, each answering its own name), its Service, the client pod."""
    labels = {"app": SERVICE}
    server = busybox_container(
        "httpd",
        "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www",
    )
    server["ports"] = [{"name": "http", "containerPort": 8080}]
    server["readinessProbe"] = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 2}
    # The pod's own resolv.conf (kubelet's clusterDNS) answers the name; then the ClusterIP.
    client_script = (
        f'out=$(nslookup {SERVICE_NAME} 2>&1); echo "$out"; '
        "ip=$(echo \"$out\" | awk '/^Address/ {a=$NF} END {print a}'); "
        'echo "resolved-to $ip"; '
        # HTTP by hand with nc: Debian's static busybox wget crashed in the pod (SIGSEGV).
        "get() { printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 $ip 80 | tail -n 1; }; "
        f'for i in $(seq {REQUESTS}); do echo "answer $(get)"; done'
    )
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TEST_NAMESPACE}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": SERVICE, "namespace": TEST_NAMESPACE},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [server]}},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": TEST_NAMESPACE},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": "http"}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "client", "namespace": TEST_NAMESPACE},
            "spec": {
                "restartPolicy": "Never",
                "containers": [busybox_container("client", client_script)],
            },
        },
    ]


def prove(the_lab: lab.Lab) -> list[str]:
    """Run the proof workload; print what the cluster shows; the failures (empty: proven)."""
    lab.section("proof: real containers, a Service, cluster DNS")
    started = time.monotonic()
    server_docs, client_doc = proof_docs()[:-1], proof_docs()[-1]
    lab.apply_docs(the_lab, server_docs, "proof")

    def servers_ready() -> bool:
        pods = the_lab.get_json("pods", "-n", TEST_NAMESPACE, "-l", f"app={SERVICE}")["items"]
        return len(pods) == 2 and all(lab.pod_ready(p) for p in pods)

    the_lab.wait_for("the 2 httpd pods to be Ready (readiness probe)", servers_ready, 180, 2)
    lab.log(f"2 httpd pods Ready in {time.monotonic() - started:.0f}s")
    lab.apply_docs(the_lab, [client_doc], "proof-client")

    def client_done() -> bool:
        pod = the_lab.get_json("pod", "client", "-n", TEST_NAMESPACE)
        return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")

    the_lab.wait_for("the client pod to finish", client_done, 120, 2)
    print(the_lab.kubectl("get", "nodes", "-o", "wide"), end="")
    print(the_lab.kubectl("get", "pods,svc", "-n", TEST_NAMESPACE, "-o", "wide"), end="")
    print(the_lab.kubectl("get", "endpointslices", "-n", TEST_NAMESPACE), end="")
    print("containerd tasks (real processes on this machine):")
    print(node.ctr_runner(node.holder_pid(the_lab))("tasks", "ls"), end="")
    logs = the_lab.kubectl("logs", "client", "-n", TEST_NAMESPACE)
    print("client pod's log:\n  " + "\n  ".join(logs.splitlines()))
    return check_client(the_lab, logs)


def check_client(the_lab: lab.Lab, logs: str) -> list[str]:
    service = the_lab.get_json("service", SERVICE, "-n", TEST_NAMESPACE)
    cluster_ip = service["spec"]["clusterIP"]
    pods = the_lab.get_json("pods", "-n", TEST_NAMESPACE, "-l", f"app={SERVICE}")["items"]
    names = {p["metadata"]["name"] for p in pods}
    client = the_lab.get_json("pod", "client", "-n", TEST_NAMESPACE)
    failures = []
    if client["status"]["phase"] != "Succeeded":
        failures.append(f"the client pod ended {client['status']['phase']}")
    resolved = re.search(r"^resolved-to (\S+)$", logs, flags=re.MULTILINE)
    if not resolved or resolved.group(1) != cluster_ip:
        failures.append(f"{SERVICE_NAME} did not resolve to the ClusterIP {cluster_ip}")
    answers = re.findall(r"^answer (.*)$", logs, flags=re.MULTILINE)
    wrong = [a for a in answers if a not in names]
    if len(answers) != REQUESTS or wrong:
        failures.append(f"not every request through {cluster_ip} reached a pod: {wrong}")
    seen = sorted(set(answers) & names)
    print(f"{len(answers)} requests through ClusterIP {cluster_ip}: answered by {seen}")
    if len(seen) < 2:
        print(f"  WARNING: only {len(seen)} of the 2 pods answered {REQUESTS} requests")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--keep-seconds",
        type=float,
        default=0.0,
        help="keep the lab and its node running this long after the proof",
    )
    parser.add_argument(
        "--app",
        action="store_true",
        help="then deploy the app from deployments/k8s-lab/overlay (node_app.py)",
    )
    parser.add_argument(
        "--load",
        action="store_true",
        help="with --app: load the serve Service, reconcile exactly (node_load.py)",
    )
    parser.add_argument(
        "--pod-loss",
        action="store_true",
        help="with --load: also a run losing a worker pod and one losing the head",
    )
    # 35 + 20 + 20 s: 55,000-140,000 votes in all, busy node or quiet (the lab FerretDB: 2 GiB).
    parser.add_argument(
        "--steady-seconds",
        type=float,
        default=35.0,
        help=f"locust's run time, no pod lost (it must send {node_load.MIN_STEADY_VOTES:,} votes)",
    )
    parser.add_argument(
        "--load-seconds", type=float, default=20.0, help="locust's run time losing a pod"
    )
    parser.add_argument("--load-users", type=int, default=20, help="locust's users")
    args = parser.parse_args()
    if (args.load and not args.app) or (args.pod_loss and not args.load):
        parser.error("--load needs --app, and --pod-loss needs --load")
    if os.geteuid() != 0:
        raise SystemExit("k8s-node: needs root (network and mount namespaces, cgroups)")
    missing = [b for b in LAB_BINARIES if not (lab.BIN / b).exists()]
    if missing or not (lab.LAB / "paths.json").exists():
        raise SystemExit(
            f"k8s-node: not built yet ({', '.join(missing) or 'paths.json'}): build.py"
        )
    timings: list[tuple[str, float]] = []
    mark = time.monotonic()
    archives = node.check_node_built()
    timings.append(("node images (pause, busybox)", time.monotonic() - mark))
    paths = json.loads((lab.LAB / "paths.json").read_text())
    node_teardown.clean_node_leftovers()
    lab.clean_leftovers()
    for sub in ("logs", "home"):
        (lab.RUN / sub).mkdir(parents=True, exist_ok=True)
    the_lab = lab.Lab()
    started = time.monotonic()
    failures: list[str] = []
    try:
        with torn_down_on_exit(the_lab):
            lab.section("control plane in network namespace " + lab.NETNS + " (no kwok)")
            mark = time.monotonic()
            lab.make_netns(the_lab)
            lab.make_credentials()
            lab.start_control_plane(the_lab)
            lab.apply_crds(the_lab, paths)
            lab.start_controllers(the_lab)
            if (lab.BIN / "kuberay-operator").exists():  # not needed by the proof below
                lab.start_operator(the_lab)
            lab.apply_docs(the_lab, [lab.pv_doc(i) for i in range(lab.PV_COUNT)], "volumes")
            timings.append(("control plane", time.monotonic() - mark))
            lab.section(f"real node {nc.NODE_NAME}")
            mark = time.monotonic()
            node.start_node(the_lab, archives)
            timings.append(("node: containerd, images, kubelet Ready", time.monotonic() - mark))
            mark = time.monotonic()
            failures = prove(the_lab)
            timings.append(("proof workload", time.monotonic() - mark))
            if args.app and not failures:
                mark = time.monotonic()
                failures = node_app.run_app(the_lab)
                timings.append(("app: RayService Ready, one vote", time.monotonic() - mark))
            if args.load and not failures:
                mark = time.monotonic()
                failures = node_load.run_load(the_lab, args)
                timings.append(
                    (
                        "load, reconciliation" + (", pod loss" if args.pod_loss else ""),
                        time.monotonic() - mark,
                    )
                )
            if args.keep_seconds:
                lab.log(f"keeping the lab {args.keep_seconds:.0f}s (Ctrl-C ends it)")
                time.sleep(args.keep_seconds)
    except lab.LabError as exc:
        print(f"\nk8s-node: FAILED: {exc}\n  logs: {lab.RUN / 'logs'}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nk8s-node: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    lab.section("result")
    for what, seconds in timings:
        print(f"  {what:45} {seconds:6.1f}s")
    if failures:
        print("k8s-node: FAILED:\n  " + "\n  ".join(failures))
        return 1
    app = ", the app's RayService Ready and one vote counted" if args.app else ""
    app += ", the load reconciled exactly" if args.load else ""
    app += " (also after losing a worker and the head)" if args.pod_loss else ""
    print(
        f"k8s-node: OK: real pods, a Service and cluster DNS on {nc.NODE_NAME}{app} "
        f"({time.monotonic() - started:.0f}s in all)"
    )
    return 0


@contextmanager
def torn_down_on_exit(the_lab: lab.Lab) -> Iterator[None]:
    """lab.py's teardown, with the node stopped first (its pods, shims, mounts, cgroups)."""

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_term)
    try:
        yield
    finally:
        lab.section("teardown: node")
        node_teardown.stop_node(the_lab)
        lab.teardown(the_lab)


if __name__ == "__main__":
    sys.exit(main())
