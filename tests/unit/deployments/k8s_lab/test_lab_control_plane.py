"""The control plane's credentials (deployments/k8s-lab/lab_control_plane.py): pure parts."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import lab_control_plane as cp


def test_kubeconfig_reaches_the_api_server_with_its_certificate_and_the_token() -> None:
    config = cp.kubeconfig("t0ken", Path("/lab/run/pki/apiserver.crt"))
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    user = next(u for u in config["users"] if u["name"] == context["context"]["user"])
    assert cluster["cluster"] == {
        "server": "https://127.0.0.1:6443",
        "certificate-authority": "/lab/run/pki/apiserver.crt",
    }
    assert user["user"] == {"token": "t0ken"}
    assert config["kind"] == "Config"


def test_the_certificate_names_the_kubernetes_service_and_its_cluster_ip() -> None:
    # The first address of --service-cluster-ip-range is the `kubernetes` Service's ClusterIP.
    service_range = ipaddress.ip_network("10.96.0.0/16")
    assert f"IP:{next(service_range.hosts())}" in cp.API_SERVER_NAMES
    assert "IP:127.0.0.1" in cp.API_SERVER_NAMES
    assert "DNS:kubernetes.default.svc.cluster.local" in cp.API_SERVER_NAMES
