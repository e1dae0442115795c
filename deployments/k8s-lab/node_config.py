"""The real node's configuration files, as pure functions of where things live (no I/O).

containerd (config version 3), the bridge CNI network, kubelet's KubeletConfiguration,
kube-proxy's KubeProxyConfiguration and CoreDNS's Corefile. node.py writes them into
.k8s-lab/run/node/ and starts the processes; tests/unit/deployments/k8s_lab/test_node_config.py
checks them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_NAME = "lab-node-0"
# Addresses on the lab namespace's `lo`: the node's InternalIP and the cluster DNS server. Pods
# reach both through the bridge's gateway (the namespace routes them locally).
NODE_IP = "10.245.0.1"
CLUSTER_DNS_IP = "10.96.0.10"  # the low band of the service range: never handed out dynamically
CLUSTER_DOMAIN = "cluster.local"
SERVICE_CIDR = "10.96.0.0/16"  # the API server's --service-cluster-ip-range (lab.py)
CLUSTER_CIDR = "10.244.0.0/16"
POD_SUBNET = "10.244.0.0/24"
POD_GATEWAY = "10.244.0.1"
BRIDGE = "cni0"
CNI_NETWORK = "lab-pods"
SANDBOX_IMAGE = "k8s-lab.local/pause:3.10"
CNI_PLUGIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
RUNC = Path("/usr/sbin/runc")  # Debian's runc
CGROUP_ROOT = "/k8s-lab"  # kubelet's cgroupRoot: every pod cgroup lands below it
# Open files for every container (soft = hard): Serve's HAProxy needs ~10,300, KubeRay's
# `ulimit -n 65536` fails here, and no process on this machine may go above 20,000.
POD_OPEN_FILES = 20000


@dataclass(frozen=True)
class NodePaths:
    """Every directory and file of the node, all below one folder of the lab's run."""

    root: Path

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd" / "state"

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd" / "config.toml"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def base_runtime_spec(self) -> Path:
        return self.root / "containerd" / "base-runtime-spec.json"

    @property
    def kubelet_dir(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet-config.json"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def volume_plugins(self) -> Path:
        return self.root / "volume-plugins"

    @property
    def resolv_conf(self) -> Path:
        return self.root / "resolv.conf"

    @property
    def kube_proxy_config(self) -> Path:
        return self.root / "kube-proxy-config.json"

    @property
    def corefile(self) -> Path:
        return self.root / "Corefile"


def toml_string(value: str) -> str:
    """A TOML basic string (JSON's escaping is a subset TOML accepts)."""
    return json.dumps(value)


def containerd_config(paths: NodePaths) -> str:
    """containerd 2.x: own root, state and socket; runc with cgroupfs; our CNI and sandbox image."""
    cri_runtime = '[plugins."io.containerd.cri.v1.runtime"]'
    runc = '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]'
    return "\n".join(
        [
            "version = 3",
            # The only plugin that writes outside root/state: it would make /opt/containerd.
            'disabled_plugins = ["io.containerd.internal.v1.opt"]',
            f"root = {toml_string(str(paths.containerd_root))}",
            f"state = {toml_string(str(paths.containerd_state))}",
            "",
            "[grpc]",
            f"  address = {toml_string(str(paths.containerd_socket))}",
            "",
            '[plugins."io.containerd.cri.v1.images"]',
            '  snapshotter = "overlayfs"',
            "",
            '[plugins."io.containerd.cri.v1.images".pinned_images]',
            f"  sandbox = {toml_string(SANDBOX_IMAGE)}",  # no registry: built and imported here
            "",
            cri_runtime,
            "  enable_selinux = false",
            "  disable_apparmor = true",
            # This machine withholds CAP_SYS_RESOURCE, so runc may not lower a sandbox's
            # oom_score_adj below containerd's own (0): runc failed "Permission denied" on it.
            "  restrict_oom_score_adj = true",
            "",
            f"{cri_runtime[:-1]}.containerd]",
            '  default_runtime_name = "runc"',
            "",
            runc,
            '  runtime_type = "io.containerd.runc.v2"',
            # Every container starts from this spec: containerd's default with POD_OPEN_FILES.
            f"  base_runtime_spec = {toml_string(str(paths.base_runtime_spec))}",
            "",
            f"{runc[:-1]}.options]",
            f"  BinaryName = {toml_string(str(RUNC))}",
            "  SystemdCgroup = false",
            "",
            f"{cri_runtime[:-1]}.cni]",
            f"  bin_dirs = [{toml_string(str(CNI_PLUGIN_DIR))}]",
            f"  conf_dir = {toml_string(str(paths.cni_conf_dir))}",
            "",
        ]
    )


def base_runtime_spec(default_spec: dict[str, Any]) -> dict[str, Any]:
    """containerd's default OCI spec (`ctr oci spec`) with RLIMIT_NOFILE at POD_OPEN_FILES."""
    spec = json.loads(json.dumps(default_spec))  # a deep copy; the caller's spec stays as it is
    process = spec["process"]
    others = [r for r in process.get("rlimits") or [] if r["type"] != "RLIMIT_NOFILE"]
    nofile = {"type": "RLIMIT_NOFILE", "hard": POD_OPEN_FILES, "soft": POD_OPEN_FILES}
    process["rlimits"] = [*others, nofile]
    return spec


def cni_conflist(paths: NodePaths) -> dict[str, Any]:
    """One bridge for the node's pods, addresses from host-local, hostPorts through portmap.

    containerd adds the loopback plugin by itself for every pod.
    """
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,  # nothing leaves the namespace
                "hairpinMode": True,  # a pod reaches itself through its own Service
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(paths.cni_ipam_dir),
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": POD_GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(paths: NodePaths) -> dict[str, Any]:
    """KubeletConfiguration for cgroup v1 (cgroupfs), our containerd, cluster DNS, no swap check."""
    socket = f"unix://{paths.containerd_socket}"
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,  # this machine has cgroup v1; kubelet 1.35+ refuses it otherwise
        "cgroupDriver": "cgroupfs",  # no systemd here
        "cgroupRoot": CGROUP_ROOT,
        "containerRuntimeEndpoint": socket,
        "imageServiceEndpoint": socket,
        "clusterDNS": [CLUSTER_DNS_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(paths.resolv_conf),
        "failSwapOn": False,
        "address": NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        # The API server has no client certificate for kubelets; the namespace has no way in.
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "podLogsDir": str(paths.pod_logs),
        "volumePluginDir": str(paths.volume_plugins),
        "registerNode": True,
        "maxPods": 30,
        "serializeImagePulls": False,
        # The disk is shared with the machine: evict only when it is really full, never GC images
        # (they cannot be pulled again: no registry).
        "evictionHard": {
            "memory.available": "200Mi",
            "nodefs.available": "2%",
            "imagefs.available": "2%",
            "nodefs.inodesFree": "2%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "nodeStatusReportFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
    }


def kube_proxy_config(kubeconfig: Path) -> dict[str, Any]:
    """iptables mode; masquerade all Service traffic so replies always come back through it."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": CLUSTER_CIDR,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "iptables": {"masqueradeAll": True, "syncPeriod": "10s", "minSyncPeriod": "1s"},
        # The conntrack table size is the machine's (not the namespace's) to set: leave it alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }


def corefile(kubeconfig: Path) -> str:
    """CoreDNS on the cluster DNS address: cluster names only (nothing upstream to forward to)."""
    return (
        f".:53 {{\n"
        f"    bind {CLUSTER_DNS_IP}\n"
        f"    errors\n"
        f"    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n"
        f"        kubeconfig {kubeconfig}\n"
        f"        pods insecure\n"
        f"        fallthrough in-addr.arpa ip6.arpa\n"
        f"    }}\n"
        f"    cache 5\n"
        f"}}\n"
    )


def resolv_conf() -> str:
    """The node's own resolv.conf for kubelet: pods with dnsPolicy Default get no name server."""
    return "# k8s-lab node: no upstream name server\noptions timeout:1 attempts:1\n"
