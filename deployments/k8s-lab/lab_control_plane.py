"""The lab's control plane: credentials, etcd, kube-apiserver, the controllers and the scheduler.

make_credentials() makes the API server's self-signed serving certificate, a service-account key
pair (openssl) and a static admin token in `system:masters`, and writes the kubeconfig every lab
client uses. start_control_plane() starts etcd and kube-apiserver and waits for /readyz;
start_controllers() starts kube-controller-manager and kube-scheduler, after the CRDs.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from lab_core import BIN, KUBECONFIG, RUN, Lab, log, sh

# The names the serving certificate is valid for: 10.96.0.1 is the `kubernetes` Service's ClusterIP.
API_SERVER_NAMES = (
    "IP:127.0.0.1",
    "IP:10.96.0.1",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
)


def kubeconfig(token: str, ca_file: Path) -> dict[str, Any]:
    """The admin's kubeconfig: the API server on 127.0.0.1:6443, its certificate, the token."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "k8s-lab",
        "clusters": [
            {
                "name": "k8s-lab",
                "cluster": {
                    "server": "https://127.0.0.1:6443",
                    "certificate-authority": str(ca_file),
                },
            }
        ],
        "users": [{"name": "lab-admin", "user": {"token": token}}],
        "contexts": [{"name": "k8s-lab", "context": {"cluster": "k8s-lab", "user": "lab-admin"}}],
    }


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
        "subjectAltName=" + ",".join(API_SERVER_NAMES),
    )
    sh("openssl", "genrsa", "-out", str(pki / "sa.key"), "2048")
    sh("openssl", "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    token = secrets.token_hex(24)
    (pki / "tokens.csv").write_text(f"{token},lab-admin,lab-admin,system:masters\n")
    KUBECONFIG.write_text(json.dumps(kubeconfig(token, pki / "apiserver.crt"), indent=2) + "\n")
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
            # Its own Endpoints would name 127.0.0.1, which an Endpoints object may not.
            "--endpoint-reconciler-type=none",
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
