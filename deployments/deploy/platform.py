"""Where the platform's parts are, for the NetworkPolicies: deploy-time options of the CLI.

deployments/k8s/network-policies.yaml names what docs/kubernetes.md installs: KubeRay's operator in
`kuberay-system`, Strimzi's in `strimzi`, Envoy Gateway's data plane in `envoy-gateway-system`, and
the API server as any address but the link-local range. A platform that differs (GKE's managed
KubeRay add-on, its load balancers' health checks from Google's ranges, a known control plane
address) says so with these options instead of an edited copy of the file:

    --kuberay-namespace NS   the KubeRay operator's namespace (it calls the head's dashboard)
    --strimzi-namespace NS   the Strimzi cluster operator's namespace (Kafka's internal ports)
    --gateway-namespace NS   where the Gateway's data plane runs (it calls the Serve ports)
    --allow-from CIDR        also let these addresses reach the Serve ports: load balancers and
                             their health checks that come from outside the cluster (repeatable;
                             GKE: 35.191.0.0/16 and 130.211.0.0/22)
    --api-server CIDR        the API server's addresses, instead of any address (repeatable)
    --dns CIDR               also allow DNS (53) to these addresses: a node-local DNS cache
                             (NodeLocal DNSCache listens on 169.254.20.10; repeatable)
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from deployments.deploy.objects import DeployError

NAMESPACE_LABEL = "kubernetes.io/metadata.name"
# The namespaces network-policies.yaml names, as docs/kubernetes.md installs the operators.
KUBERAY_NAMESPACE = "kuberay-system"
STRIMZI_NAMESPACE = "strimzi"
GATEWAY_NAMESPACE = "envoy-gateway-system"
# Envoy Gateway's label on its data plane's pods: the namespace of the Gateway they serve (ours).
OWNING_GATEWAY_NAMESPACE = "gateway.envoyproxy.io/owning-gateway-namespace"
# The policy that opens the Serve ports to the way in, and the one for DNS.
SERVE_POLICY = "votes-serve-from-gateway"
DNS_POLICY = "votes-dns"
# API server rules are the egress rules to an ipBlock on exactly these ports.
API_SERVER_PORTS = {443, 6443}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass
class Platform:
    kuberay_namespace: str = KUBERAY_NAMESPACE
    strimzi_namespace: str = STRIMZI_NAMESPACE
    gateway_namespace: str = GATEWAY_NAMESPACE
    allow_from: list[str] = field(default_factory=list)
    api_server: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)


def _namespace(option: str, name: str) -> str:
    if not _DNS_LABEL.match(name):
        raise DeployError(f"{option} {name!r}: not a namespace name (lower-case DNS label)")
    return name


def _cidr(option: str, text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError as exc:
        raise DeployError(f"{option} {text!r}: not an address range in CIDR form ({exc})") from exc


def _policies(docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == "NetworkPolicy"]


def _peers(policy: dict[str, Any]) -> list[dict[str, Any]]:
    spec = policy["spec"]
    rules = [(r, "from") for r in spec.get("ingress") or []]
    rules += [(r, "to") for r in spec.get("egress") or []]
    return [peer for rule, key in rules for peer in rule.get(key) or []]


def _rename_namespaces(docs: Sequence[dict[str, Any]], renames: dict[str, str]) -> None:
    """Every namespace selector of the policies, renamed in one pass (so a swap stays a swap)."""
    for policy in _policies(docs):
        for peer in _peers(policy):
            labels = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
            if labels.get(NAMESPACE_LABEL) in renames:
                labels[NAMESPACE_LABEL] = renames[labels[NAMESPACE_LABEL]]


def _is_api_server_rule(rule: dict[str, Any]) -> bool:
    peers = rule.get("to") or []
    ports = {port.get("port") for port in rule.get("ports") or []}
    return bool(peers) and all("ipBlock" in peer for peer in peers) and ports == API_SERVER_PORTS


def apply_platform(docs: Sequence[dict[str, Any]], platform: Platform, namespace: str) -> None:
    """The options of `platform` in the NetworkPolicies of `docs`, deployed to `namespace`."""
    renames = {
        KUBERAY_NAMESPACE: _namespace("--kuberay-namespace", platform.kuberay_namespace),
        STRIMZI_NAMESPACE: _namespace("--strimzi-namespace", platform.strimzi_namespace),
        GATEWAY_NAMESPACE: _namespace("--gateway-namespace", platform.gateway_namespace),
    }
    allow_from = [_cidr("--allow-from", c) for c in platform.allow_from]
    api_server = [_cidr("--api-server", c) for c in platform.api_server]
    dns = [_cidr("--dns", c) for c in platform.dns]
    _rename_namespaces(docs, renames)
    for policy in _policies(docs):
        for peer in _peers(policy):
            labels = (peer.get("podSelector") or {}).get("matchLabels") or {}
            if OWNING_GATEWAY_NAMESPACE in labels:
                labels[OWNING_GATEWAY_NAMESPACE] = namespace  # our Gateway's, wherever we deploy
        if api_server:
            for rule in policy["spec"].get("egress") or []:
                if _is_api_server_rule(rule):
                    rule["to"] = [{"ipBlock": {"cidr": cidr}} for cidr in api_server]
    for option, cidrs, name, rules_key, peers_key in (
        ("--allow-from", allow_from, SERVE_POLICY, "ingress", "from"),
        ("--dns", dns, DNS_POLICY, "egress", "to"),
    ):
        if not cidrs:
            continue
        found = [p for p in _policies(docs) if p["metadata"]["name"] == name]
        if not found:
            raise DeployError(f"{option}: no NetworkPolicy {name} to add it to")
        for rule in found[0]["spec"][rules_key]:
            rule[peers_key] += [{"ipBlock": {"cidr": cidr}} for cidr in cidrs]
