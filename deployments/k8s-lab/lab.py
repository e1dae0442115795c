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

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LAB = Path(os.environ.get("K8S_LAB_DIR", REPO / ".k8s-lab")).resolve()
BIN = LAB / "bin"
RUN = LAB / "run"  # this run's state, laid anew each time
KUBECONFIG = LAB / "kubeconfig"
NETNS = "k8s-lab"
NETNS_ETC = Path("/etc/netns") / NETNS
NAMESPACE = "votes"
IMAGE = "votes-lab.local/votes:lab"
NODES = ("kwok-node-0", "kwok-node-1", "kwok-node-2")
PV_COUNT = 6
VENDORED_CRDS = REPO / "devkit" / "k8s_schemas"
PYTHON = REPO / ".venv" / "bin" / "python"


class LabError(RuntimeError):
    """A step of the lab failed; the message says which and where its log is."""


def log(message: str) -> None:
    print(f"[k8s-lab {time.strftime('%H:%M:%S')}] {message}", flush=True)


def section(title: str) -> None:
    print(f"\n==== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def lab_env() -> dict[str, str]:
    """The environment of every lab process: HOME inside the lab, so nothing lands in ~."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "HTTP", "HTTPS"))}
    env.update(
        HOME=str(RUN / "home"),
        KUBECONFIG=str(KUBECONFIG),
        KUBECACHEDIR=str(RUN / "home" / "kube-cache"),
        KWOK_WORKDIR=str(RUN / "kwok"),
        NO_PROXY="*",
    )
    return env


def in_netns(args: list[str]) -> list[str]:
    return ["ip", "netns", "exec", NETNS, *args]


@dataclass
class Lab:
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    netns_made: bool = False

    # ---- processes -------------------------------------------------------------------------
    def start(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> None:
        log_path = RUN / "logs" / f"{name}.log"
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                in_netns(args),
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**lab_env(), **(extra_env or {})},
                start_new_session=True,  # Ctrl-C reaches only this script; it stops them in order
            )
        self.procs[name] = proc
        with (RUN / "pids").open("a") as pids:
            pids.write(f"{proc.pid} {name}\n")
        log(f"started {name} (pid {proc.pid}; log {log_path.relative_to(REPO)})")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (RUN / "logs" / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
                raise LabError(
                    f"{name} exited ({proc.returncode}); its log ends:\n  " + "\n  ".join(tail)
                )

    def stop_all(self) -> None:
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
                log(f"stopped {name} (pid {proc.pid})")
        self.procs.clear()
        (RUN / "pids").unlink(missing_ok=True)

    # ---- commands inside the namespace -----------------------------------------------------
    def kubectl(self, *args: str, check: bool = True, quiet: bool = False) -> str:
        cmd = in_netns([str(BIN / "kubectl"), f"--kubeconfig={KUBECONFIG}", *args])
        proc = subprocess.run(cmd, capture_output=True, text=True, env=lab_env(), check=False)
        if check and proc.returncode != 0:
            raise LabError(f"kubectl {' '.join(args)} failed:\n{proc.stderr.strip()}")
        if not quiet and proc.returncode != 0:
            log(f"(kubectl {' '.join(args[:3])}: {proc.stderr.strip()[:200]})")
        return proc.stdout

    def get_json(self, *args: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def wait_for(self, what: str, test: Any, timeout_s: float, every_s: float = 1.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            if test():
                return
            if time.monotonic() > deadline:
                raise LabError(f"timed out after {timeout_s:.0f}s waiting for {what}")
            time.sleep(every_s)


# ---- setup ---------------------------------------------------------------------------------
def sh(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True)


def clean_leftovers() -> None:
    """Stop processes a crashed earlier run left (by the PIDs it recorded), drop its namespace."""
    pids = RUN / "pids"
    if pids.exists():
        for line in pids.read_text().splitlines():
            pid_text, name = line.split(maxsplit=1)
            cmdline = Path(f"/proc/{pid_text}/cmdline")
            if cmdline.exists() and str(BIN) in cmdline.read_text(errors="replace"):
                os.kill(int(pid_text), signal.SIGKILL)
                log(f"killed leftover {name} (pid {pid_text}) of an earlier run")
    if (
        NETNS
        in subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=False
        ).stdout
    ):
        sh("ip", "netns", "del", NETNS)
    if RUN.exists():
        shutil.rmtree(RUN)


def make_netns(lab: Lab) -> None:
    sh("ip", "netns", "add", NETNS)
    lab.netns_made = True
    sh("ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "up")
    # `ip netns exec` bind-mounts these over /etc/hosts and /etc/resolv.conf for the lab's
    # processes only; the machine's own files stay untouched. No name server: lookups fail fast.
    NETNS_ETC.mkdir(parents=True, exist_ok=True)
    (NETNS_ETC / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
    (NETNS_ETC / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    log(f"network namespace {NETNS}: only lo, 127.0.0.1; hosts in {NETNS_ETC}")


def make_credentials() -> str:
    pki = RUN / "pki"
    pki.mkdir(parents=True)
    sh(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-keyout",
        str(pki / "apiserver.key"),
        "-out",
        str(pki / "apiserver.crt"),
        "-subj",
        "/CN=kube-apiserver",
        "-addext",
        "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local",
    )
    sh("openssl", "genrsa", "-out", str(pki / "sa.key"), "2048")
    sh("openssl", "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    token = secrets.token_hex(24)
    (pki / "tokens.csv").write_text(f"{token},lab-admin,lab-admin,system:masters\n")
    KUBECONFIG.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "k8s-lab",
                "clusters": [
                    {
                        "name": "k8s-lab",
                        "cluster": {
                            "server": "https://127.0.0.1:6443",
                            "certificate-authority": str(pki / "apiserver.crt"),
                        },
                    }
                ],
                "users": [{"name": "lab-admin", "user": {"token": token}}],
                "contexts": [
                    {"name": "k8s-lab", "context": {"cluster": "k8s-lab", "user": "lab-admin"}}
                ],
            },
            indent=2,
        )
        + "\n"
    )
    KUBECONFIG.chmod(0o600)
    return token


def start_control_plane(lab: Lab) -> None:
    pki = RUN / "pki"
    lab.start(
        "etcd",
        [
            str(BIN / "etcd"),
            f"--data-dir={RUN / 'etcd'}",
            "--name=lab",
            "--listen-client-urls=http://127.0.0.1:2379",
            "--advertise-client-urls=http://127.0.0.1:2379",
            "--listen-peer-urls=http://127.0.0.1:2380",
            "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            "--initial-cluster=lab=http://127.0.0.1:2380",
            "--log-level=warn",
            "--quota-backend-bytes=1073741824",
        ],
    )
    lab.start(
        "kube-apiserver",
        [
            str(BIN / "kube-apiserver"),
            "--etcd-servers=http://127.0.0.1:2379",
            "--bind-address=127.0.0.1",
            "--secure-port=6443",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",  # its own Endpoints would name 127.0.0.1: not allowed
            "--authorization-mode=Node,RBAC",
            f"--token-auth-file={pki / 'tokens.csv'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--allow-privileged=true",
            "--profiling=false",
        ],
    )
    lab.wait_for(
        "the API server's /readyz",
        lambda: lab.kubectl("get", "--raw", "/readyz", check=False, quiet=True).strip() == "ok",
        timeout_s=90,
    )
    log("kube-apiserver is ready")


def start_controllers(lab: Lab) -> None:
    """After the CRDs: the disruption controller then maps RayCluster from its first sync on."""
    pki = RUN / "pki"
    lab.start(
        "kube-controller-manager",
        [
            str(BIN / "kube-controller-manager"),
            f"--kubeconfig={KUBECONFIG}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=10257",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'apiserver.crt'}",
            "--use-service-account-credentials=false",
            f"--authentication-kubeconfig={KUBECONFIG}",
            f"--authorization-kubeconfig={KUBECONFIG}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--profiling=false",
        ],
    )
    lab.start(
        "kube-scheduler",
        [
            str(BIN / "kube-scheduler"),
            f"--kubeconfig={KUBECONFIG}",
            f"--authentication-kubeconfig={KUBECONFIG}",
            f"--authorization-kubeconfig={KUBECONFIG}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=10259",
            "--profiling=false",
        ],
    )


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


def apply_docs(lab: Lab, docs: list[dict[str, Any]], name: str) -> None:
    path = RUN / f"{name}.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    lab.kubectl("apply", "--server-side", "-f", str(path))


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


def conditions(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj.get("status", {}).get("conditions") or []


def apply_crds(lab: Lab, paths: dict[str, str]) -> None:
    bases = Path(paths["kuberay_module"]) / "config" / "crd" / "bases"
    files = [bases / "ray.io_rayjobs.yaml", *sorted(VENDORED_CRDS.rglob("*.yaml"))]
    for crd in files:
        lab.kubectl("apply", "--server-side", "-f", str(crd))
    # Not `kubectl wait`: it fails at once on a CRD whose status is not written yet (busy machine).
    lab.wait_for("the CRDs to be Established", lambda: all(
        any(c["type"] == "Established" and c["status"] == "True" for c in conditions(crd))
        for crd in lab.get_json("crd")["items"]), timeout_s=60)  # fmt: skip
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


# ---- apply with the deploy CLI -------------------------------------------------------------
def lab_checkout() -> Path:
    """A copy of the files the deploy CLI reads, with throwaway secrets beside the manifests.

    The deploy CLI reads secrets.env from the checkout's deployments/k8s (no path option); a user's
    own secrets.env must never be read or overwritten, so the lab passes --repo with this copy.
    """
    root = RUN / "checkout"
    (root / "deployments").mkdir(parents=True)
    for name in ("config.yaml", "pyproject.toml"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "kuberay", root / "kuberay")
    shutil.copytree(
        REPO / "deployments" / "k8s",
        root / "deployments" / "k8s",
        ignore=shutil.ignore_patterns("secrets.env"),
    )

    def pw() -> str:
        return secrets.token_hex(16)

    redis_app, mongo_app = pw(), pw()
    (root / "deployments" / "k8s" / "secrets.env").write_text(
        "\n".join(
            [
                f"VOTES_WRITE_TOKEN={pw()}",
                f"REDIS_APP_PASSWORD={redis_app}",
                f"VOTES_REDIS_URL=redis://votes-app:{redis_app}@votes-redis:6379/0",
                f"REDIS_PASSWORD={pw()}",
                f"REDIS_ADMIN_PASSWORD={pw()}",
                f"REDIS_GCS_PASSWORD={pw()}",
                "MONGO_ROOT_USERNAME=votes",
                f"MONGO_ROOT_PASSWORD={pw()}",
                f"MONGO_APP_PASSWORD={mongo_app}",
                f"VOTES_MONGO_URL=mongodb://votes-app:{mongo_app}@votes-mongo:27017/votes?authSource=votes",
                f"GRAFANA_ADMIN_PASSWORD={pw()}",
                "",
            ]
        )
    )
    (root / "deployments" / "k8s" / "ray-token" / "secrets.env").write_text(
        f"auth_token={secrets.token_hex(32)}\n"
    )
    return root


def deploy(lab: Lab) -> None:
    checkout = lab_checkout()
    cmd = in_netns(
        [
            str(PYTHON),
            "-m",
            "deployments.deploy",
            "apply",
            "--namespace",
            NAMESPACE,
            "--image",
            IMAGE,
            "--kubeconfig",
            str(KUBECONFIG),
            "--repo",
            str(checkout),
            "--timeout",
            "20",
        ]
    )
    log(
        "python -m deployments.deploy apply --namespace votes --image "
        + IMAGE
        + " (throwaway secrets; --timeout 20: nothing here can run Ray Serve)"
    )
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=lab_env(), check=False)
    (RUN / "logs" / "deploy.log").write_text(proc.stdout + proc.stderr)
    lines = proc.stdout.splitlines()
    applied = [line for line in lines if line.startswith("applied ")]
    for line in lines:
        if not line.startswith("applied "):
            print("  | " + line)
    print(f"  | ... {len(applied)} objects applied (all lines in .k8s-lab/run/logs/deploy.log)")
    if proc.returncode not in (0, 1):  # 1: applied, but the RayService is not RUNNING in time
        raise LabError(f"deploy apply failed (exit {proc.returncode}):\n{proc.stderr.strip()}")


# ---- show and assert -----------------------------------------------------------------------
def pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def wait_for_ray_pods(lab: Lab) -> None:
    def ready() -> bool:
        pods = lab.get_json("pods", "-n", NAMESPACE)["items"]
        ray = [p for p in pods if "ray.io/node-type" in p["metadata"].get("labels", {})]
        types = {p["metadata"]["labels"]["ray.io/node-type"] for p in ray}
        return {"head", "worker"} <= types and all(pod_ready(p) for p in pods)

    lab.wait_for(
        "the RayCluster's head and worker pods, and every pod, to be Ready",
        ready,
        timeout_s=120,
        every_s=2,
    )
    time.sleep(3)  # EndpointSlices follow readiness within a moment


def show_probe(probe: dict[str, Any] | None) -> str:
    if not probe:
        return "-"
    if "httpGet" in probe:
        how = f"http :{probe['httpGet'].get('port')}{probe['httpGet'].get('path', '')}"
    elif "exec" in probe:
        how = "exec " + " ".join(probe["exec"]["command"])[-160:]
    elif "tcpSocket" in probe:
        how = f"tcp :{probe['tcpSocket']['port']}"
    else:
        how = json.dumps(probe)
    return f"{how} (period {probe.get('periodSeconds', 10)}s)"


def show_pod(pod: dict[str, Any]) -> None:
    meta = pod["metadata"]
    print(
        f"pod {meta['name']}  node={pod['spec'].get('nodeName')}  phase={pod['status'].get('phase')}"
        f"  ready={pod_ready(pod)}  ip={pod['status'].get('podIP')}"
    )
    print(f"  labels: {', '.join(f'{k}={v}' for k, v in sorted(meta.get('labels', {}).items()))}")
    for kind in ("initContainers", "containers"):
        for c in pod["spec"].get(kind, []):
            print(f"  {kind[:-1]} {c['name']}  image={c['image']}")
            command = " ".join([*c.get("command", []), *c.get("args", [])])
            if command:
                print(f"    command: {command[:600]}")
            ports = ", ".join(
                f"{p.get('name', '?')}={p['containerPort']}" for p in c.get("ports", [])
            )
            if ports:
                print(f"    ports: {ports}")
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if c.get(probe):
                    print(f"    {probe}: {show_probe(c[probe])}")
            names = [e["name"] for e in c.get("env", [])]
            if names:
                print(f"    env: {', '.join(names)}")
            if c.get("lifecycle", {}).get("preStop"):
                print("    preStop: " + json.dumps(c["lifecycle"]["preStop"])[:200])


def endpoints_by_service(lab: Lab) -> dict[str, list[tuple[str, bool]]]:
    slices = lab.get_json("endpointslices", "-n", NAMESPACE)["items"]
    out: dict[str, list[tuple[str, bool]]] = {}
    for s in slices:
        svc = s["metadata"].get("labels", {}).get("kubernetes.io/service-name")
        if not svc:
            continue
        for ep in s.get("endpoints") or []:
            target = ep.get("targetRef", {}).get("name", ",".join(ep.get("addresses", [])))
            out.setdefault(svc, []).append((target, bool(ep.get("conditions", {}).get("ready"))))
    return out


def kuberay_made(obj: dict[str, Any]) -> bool:
    meta = obj["metadata"]
    owners = {o["kind"] for o in meta.get("ownerReferences", [])}
    return (
        bool(owners & {"RayCluster", "RayService"})
        or meta.get("labels", {}).get("app.kubernetes.io/created-by") == "kuberay-operator"
    )


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def show_disruption_budgets(lab: Lab) -> None:
    """What the disruption controller made of each PodDisruptionBudget (not asserted: a warning)."""
    section("PodDisruptionBudgets: what a node drain may evict")

    def synced() -> bool:
        items = lab.get_json("pdb", "-n", NAMESPACE)["items"]
        return all(
            p.get("status", {}).get("observedGeneration") == p["metadata"]["generation"]
            and p["status"].get("conditions")
            for p in items
        )

    # The controller retries a failed sync only on a change: one poke after the first sync.
    lab.wait_for("the disruption controller to sync the PDBs", synced, timeout_s=60)
    lab.kubectl("annotate", "pdb", "--all", "-n", NAMESPACE, "k8s-lab/resync=1", "--overwrite")
    time.sleep(3)
    for pdb in lab.get_json("pdb", "-n", NAMESPACE)["items"]:
        spec, status = pdb["spec"], pdb.get("status", {})
        budget = (
            f"maxUnavailable={spec['maxUnavailable']}"
            if "maxUnavailable" in spec
            else f"minAvailable={spec.get('minAvailable')}"
        )
        cond = next(
            (c for c in status.get("conditions", []) if c["type"] == "DisruptionAllowed"), {}
        )
        print(
            f"{pdb['metadata']['name']:18} {budget:18} expectedPods={status.get('expectedPods')} "
            f"currentHealthy={status.get('currentHealthy')} "
            f"disruptionsAllowed={status.get('disruptionsAllowed')} "
            f"({cond.get('reason')}: {cond.get('message', '')})"
        )
        if cond.get("reason") == "SyncFailed":
            print(
                f"  WARNING: {pdb['metadata']['name']} cannot be computed, so the eviction API "
                "refuses every pod it covers: a node drain waits on them forever"
            )
    try_evicting_a_worker(lab)


def try_evicting_a_worker(lab: Lab) -> None:
    """Ask the eviction API (dry run) for one Ray worker, as `kubectl drain` would."""
    workers = lab.get_json("pods", "-n", NAMESPACE, "-l", "ray.io/node-type=worker")["items"]
    if not workers:
        return
    name = workers[0]["metadata"]["name"]
    body = RUN / "eviction.json"
    body.write_text(
        json.dumps(
            {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "deleteOptions": {"dryRun": ["All"]},
            }
        )
    )
    cmd = in_netns(
        [
            str(BIN / "kubectl"),
            f"--kubeconfig={KUBECONFIG}",
            "create",
            "--raw",
            f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/eviction",
            "-f",
            str(body),
        ]
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, env=lab_env(), check=False)
    answer = (proc.stdout + proc.stderr).strip().splitlines()
    verdict = "allowed" if proc.returncode == 0 else "REFUSED"
    print(
        f"eviction of {name} (dry run, as a drain asks): {verdict}: {answer[-1] if answer else ''}"
    )


def show_and_check(lab: Lab) -> list[str]:
    section("RayService and RayCluster (made by KubeRay v1.6.2 from our RayService)")
    print(lab.kubectl("get", "rayservice,raycluster", "-n", NAMESPACE, "-o", "wide"), end="")
    for rc in lab.get_json("rayclusters", "-n", NAMESPACE)["items"]:
        status = rc.get("status", {})
        print(
            f"raycluster {rc['metadata']['name']}: state={status.get('state')} "
            f"desiredWorkers={status.get('desiredWorkerReplicas')} "
            f"readyWorkers={status.get('readyWorkerReplicas')} "
            f"head={status.get('head', {}).get('serviceName')}"
        )
    rs = lab.get_json("rayservices", "-n", NAMESPACE)["items"]
    for r in rs:
        conds = [
            f"{c['type']}={c['status']}({c.get('reason')})"
            for c in r.get("status", {}).get("conditions", [])
        ]
        print(f"rayservice {r['metadata']['name']}: {', '.join(conds) or 'no conditions yet'}")

    pods = lab.get_json("pods", "-n", NAMESPACE)["items"]
    section("Ray pods (head, worker): ray start, probes, env names, ports")
    for pod in pods:
        if "ray.io/node-type" in pod["metadata"].get("labels", {}):
            show_pod(pod)
    section("all pods")
    print(lab.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide"), end="")

    section("Services: selector and endpoints (EndpointSlices)")
    services = lab.get_json("services", "-n", NAMESPACE)["items"]
    endpoints = endpoints_by_service(lab)
    failures: list[str] = []
    rows = [("SERVICE", "TYPE", "MADE BY", "SELECTOR", "READY ENDPOINTS")]
    for svc in services:
        name = svc["metadata"]["name"]
        selector = svc["spec"].get("selector") or {}
        eps = endpoints.get(name, [])
        ready = [t for t, ok in eps if ok]
        made_by = "kuberay" if kuberay_made(svc) else "deploy"
        cluster_ip = svc["spec"].get("clusterIP")
        kind = "headless" if cluster_ip == "None" else svc["spec"]["type"]
        sel = ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "(none)"
        rows.append((name, kind, made_by, sel, ", ".join(ready) or "NONE"))
        if selector and not ready:
            failures.append(f"Service {name} selects {sel} but has no ready endpoint")
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])

    section("KubeRay's Services: selector beside the labels of the pods it selects")
    for svc in services:
        if not kuberay_made(svc):
            continue
        selector = svc["spec"].get("selector") or {}
        print(f"{svc['metadata']['name']}")
        print(f"  selector: {', '.join(f'{k}={v}' for k, v in sorted(selector.items()))}")
        matched = [
            p for p in pods if selector and selects(selector, p["metadata"].get("labels", {}))
        ]
        for pod in matched:
            labels = pod["metadata"].get("labels", {})
            shown = ", ".join(f"{k}={labels[k]}" for k in sorted(selector))
            print(f"  pod {pod['metadata']['name']}: {shown}  (ready={pod_ready(pod)})")
        if not matched:
            print("  selects NO pod")

    show_disruption_budgets(lab)

    section("events (last 25)")
    events = lab.kubectl("get", "events", "-n", NAMESPACE, "--sort-by=.lastTimestamp")
    print("\n".join(events.splitlines()[:1] + events.splitlines()[-25:]))
    return failures


# ---- optional: a real local Ray behind the head Service's name ---------------------------
RAY_TMP = Path("/tmp/k8s-lab-ray")  # short: Ray's socket paths must stay under 108 bytes


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
            "unshare", "--pid", "--fork", "--kill-child", "--mount-proc",
            str(REPO / ".venv" / "bin" / "ray"), "start", "--head", "--block",
            "--port=6379", "--dashboard-host=127.0.0.1", "--dashboard-port=8265",
            "--num-cpus=2", "--disable-usage-stats", f"--temp-dir={RAY_TMP}",
        ],
        extra_env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token},
    )  # fmt: skip
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


# ---- teardown ------------------------------------------------------------------------------
def teardown(lab: Lab) -> None:
    section("teardown")
    if "kube-apiserver" in lab.procs and lab.procs["kube-apiserver"].poll() is None:
        lab.kubectl(
            "delete",
            "namespace",
            NAMESPACE,
            "--wait=false",
            "--ignore-not-found",
            check=False,
            quiet=True,
        )
        log(f"namespace {NAMESPACE} deleted")
    lab.stop_all()
    if lab.netns_made:
        subprocess.run(["ip", "netns", "del", NETNS], check=False)
        log(f"network namespace {NETNS} removed")
    shutil.rmtree(NETNS_ETC, ignore_errors=True)
    shutil.rmtree(RAY_TMP, ignore_errors=True)
    shutil.rmtree(RUN / "etcd", ignore_errors=True)
    shutil.rmtree(RUN / "volumes", ignore_errors=True)


@contextmanager
def torn_down_on_exit(lab: Lab) -> Iterator[None]:
    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, on_term)  # also where SIGINT came in ignored (a `&` job)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    try:
        yield
    finally:
        teardown(lab)


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
    missing = [
        b
        for b in (
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubectl",
            "kwok",
            "kuberay-operator",
        )
        if not (BIN / b).exists()
    ]
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
