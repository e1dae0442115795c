#!/usr/bin/env python3
"""Run a real Kubernetes control plane in a network namespace, deploy votes on it, check, tear down.

    python deployments/k8s-lab/lab.py [--with-ray] [--keep-seconds N]   (root; after build.py)

etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (3 fake Nodes, fake pods)
and the KubeRay operator run inside the network namespace `k8s-lab`: nothing can leave the
machine. The deploy CLI applies deployments/k8s against the real API server; the script then shows
what KubeRay made (RayCluster, pods, Services, endpoints, events) and asserts that every Service
with a selector has endpoints. Everything it started is stopped by PID on exit, Ctrl-C included.
There is no kubelet and no container: kwok marks pods Running and Ready.
"""

# The lab's rooms, each a module beside this one: lab_core (paths, log, the Lab and its
# processes), lab_netns (the network namespace, leftovers, teardown), lab_control_plane
# (credentials, etcd, the API server, controllers), lab_kuberay (CRDs, operator), lab_cluster
# (kwok, fake Nodes, volumes), lab_deploy (the deploy CLI on a throwaway checkout), lab_checks
# (what is shown and asserted), lab_real_ray (--with-ray). This module is the entry point and,
# for the node_* modules of `make k8s-node` (`import lab`), the one name for what they use.

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from lab_checks import pod_ready, show_and_check, wait_for_ray_pods
from lab_cluster import PV_COUNT, make_nodes_and_volumes, pv_doc, start_kwok
from lab_control_plane import make_credentials, start_control_plane, start_controllers
from lab_core import (
    BIN,
    KUBECONFIG,
    LAB,
    NAMESPACE,
    NETNS,
    NETNS_ETC,
    PYTHON,
    REPO,
    RUN,
    Lab,
    LabError,
    apply_docs,
    in_netns,
    lab_env,
    log,
    section,
    sh,
    shown,
)
from lab_deploy import deploy, lab_checkout
from lab_kuberay import apply_crds, start_operator
from lab_netns import clean_leftovers, make_netns, teardown, torn_down_on_exit
from lab_real_ray import with_real_ray

# What the node_* modules use as `lab.NAME` (tests/unit/deployments/k8s_lab/test_lab.py).
__all__ = [
    "BIN",
    "KUBECONFIG",
    "LAB",
    "NAMESPACE",
    "NETNS",
    "NETNS_ETC",
    "PV_COUNT",
    "PYTHON",
    "REPO",
    "RUN",
    "Lab",
    "LabError",
    "apply_crds",
    "apply_docs",
    "clean_leftovers",
    "in_netns",
    "lab_checkout",
    "lab_env",
    "log",
    "make_credentials",
    "make_netns",
    "pod_ready",
    "pv_doc",
    "section",
    "sh",
    "shown",
    "start_control_plane",
    "start_controllers",
    "start_operator",
    "teardown",
]

LAB_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "kuberay-operator",
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--keep-seconds",
        type=float,
        default=0.0,
        help="keep the lab running this long after the checks (KUBECONFIG="
        ".k8s-lab/kubeconfig; run kubectl with `ip netns exec k8s-lab`)",
    )
    parser.add_argument(
        "--with-ray",
        action="store_true",
        help="after the checks: a real local Ray behind the head Service's name (optional)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("k8s-lab: needs root (ip netns)")
    missing = [b for b in LAB_BINARIES if not (BIN / b).exists()]
    if missing or not (LAB / "paths.json").exists():
        raise SystemExit(
            f"k8s-lab: not built yet ({', '.join(missing) or 'paths.json'}): "
            "run deployments/k8s-lab/build.py (make k8s-lab does)"
        )
    paths = json.loads((LAB / "paths.json").read_text())
    clean_leftovers()
    for sub in ("logs", "home", "kwok"):
        (RUN / sub).mkdir(parents=True, exist_ok=True)
    lab = Lab()
    started = time.monotonic()
    failures: list[str] = []
    try:
        with torn_down_on_exit(lab):
            section("control plane in network namespace " + NETNS)
            make_netns(lab)
            make_credentials()
            start_control_plane(lab)
            apply_crds(lab, paths)
            start_controllers(lab)
            start_kwok(lab, paths)
            make_nodes_and_volumes(lab)
            start_operator(lab)
            log(f"control plane up in {time.monotonic() - started:.0f}s")
            section("deploy")
            deploy(lab)
            wait_for_ray_pods(lab)
            failures = show_and_check(lab)
            if args.with_ray:
                with_real_ray(lab)
            if args.keep_seconds:
                log(f"keeping the lab {args.keep_seconds:.0f}s (Ctrl-C ends it)")
                time.sleep(args.keep_seconds)
    except LabError as exc:
        print(f"\nk8s-lab: FAILED: {exc}\n  logs: {RUN / 'logs'}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nk8s-lab: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    section("result")
    if failures:
        print("k8s-lab: FAILED: Services without endpoints:\n  " + "\n  ".join(failures))
        return 1
    print(
        "k8s-lab: OK: every Service with a selector has ready endpoints "
        f"({time.monotonic() - started:.0f}s in all)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
