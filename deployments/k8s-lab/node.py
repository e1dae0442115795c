"""The real node: containerd, kubelet, kube-proxy and CoreDNS inside the lab's network namespace.

All node processes share one mount namespace of their own (a `holder` process made with
`unshare --mount --propagation slave` inside the lab's network namespace; the others join it
with `nsenter`). In it, tmpfs covers /run, /var/log and /var/lib: containerd's shim sockets, the
pods' network namespaces, kubelet's /var/log/containers links and CNI's cache land there; every
mount the node makes (container root filesystems, volumes) exists only there, so it is gone once
the last process of that namespace is. Pod cgroups go below /k8s-lab in each cgroup v1
hierarchy, which teardown (node_teardown.py) empties and removes. See docs/kubernetes.md,
"The real node".
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import lab
import node_config as nc
from node_images import build_node_images, helper_archives, import_images

NODE_RUN = lab.RUN / "node"
PATHS = nc.NodePaths(NODE_RUN)
HOLDER_FILE = lab.RUN / "node-holder"  # "<pid> <mount namespace>": cleans up after a SIGKILL
IMAGES_DIR = lab.LAB / "images"  # the images helper's archives (images.py build)
NODE_IMAGES_DIR = lab.LAB / "node-images"
CGROUP_MOUNTS = Path("/sys/fs/cgroup")
NODE_BINARIES = (
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "kubelet",
    "kube-proxy",
    "coredns",
    "pause",
)
# kubelet sets these machine-wide sysctls on start (there is no option to leave them alone):
# saved before, written back at teardown.
KERNEL_TUNABLES = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
SAVED_TUNABLES = lab.RUN / "node-kernel-tunables.json"
HOST_TOOLS = ("runc", "iptables", "conntrack", "nsenter", "unshare")


def node_env() -> dict[str, str]:
    """The lab's environment, with our binaries (containerd finds its shim on PATH) first."""
    env = lab.lab_env()
    env["PATH"] = f"{lab.BIN}:/usr/sbin:/usr/bin:/sbin:/bin"
    return env


# ---- the mount namespace of the node ---------------------------------------------------------
def mount_namespace(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/mnt")


def start_holder(the_lab: lab.Lab) -> int:
    """The process that keeps the node's mount namespace; returns its PID."""
    script = (
        "mount -t tmpfs -o mode=0755 k8s-lab-run /run && "
        "mount -t tmpfs -o mode=0755 k8s-lab-log /var/log && "
        "mount -t tmpfs -o mode=0755 k8s-lab-lib /var/lib && "  # CNI's result cache: /var/lib/cni
        "echo ready && exec sleep infinity"
    )
    log_path = lab.RUN / "logs" / "node-holder.log"
    proc = subprocess.Popen(
        [
            "nsenter",
            f"--net=/run/netns/{lab.NETNS}",
            "unshare",
            "--mount",
            "--propagation",
            "slave",
            "sh",
            "-c",
            script,
        ],
        stdout=subprocess.PIPE,
        stderr=log_path.open("ab"),
        start_new_session=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != b"ready":
        raise lab.LabError(f"the node's mount namespace failed; see {log_path}")
    the_lab.procs["node-holder"] = proc  # type: ignore[assignment]
    HOLDER_FILE.write_text(f"{proc.pid} {mount_namespace(proc.pid)}\n")
    lab.log(f"node mount namespace held by pid {proc.pid} (tmpfs on /run, /var/log, /var/lib)")
    return proc.pid


def holder_pid(the_lab: lab.Lab) -> int:
    return the_lab.procs["node-holder"].pid


def in_node(holder: int, args: list[str]) -> list[str]:
    return ["nsenter", f"--target={holder}", "--mount", "--net", *args]


def start_in_node(the_lab: lab.Lab, holder: int, name: str, args: list[str]) -> None:
    """Like Lab.start, in the node's mount and network namespaces."""
    log_path = lab.RUN / "logs" / f"{name}.log"
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            in_node(holder, args),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=node_env(),
            start_new_session=True,
        )
    the_lab.procs[name] = proc
    with (lab.RUN / "pids").open("a") as pids:
        pids.write(f"{proc.pid} {name}\n")
    lab.log(f"started {name} (pid {proc.pid}; log {lab.shown(log_path)})")


def ctr_runner(holder: int) -> Callable[..., str]:
    def ctr(*args: str) -> str:
        cmd = [str(lab.BIN / "ctr"), f"--address={PATHS.containerd_socket}", "-n", "k8s.io", *args]
        proc = subprocess.run(
            in_node(holder, cmd), capture_output=True, text=True, env=node_env(), check=False
        )
        if proc.returncode != 0:
            raise lab.LabError(f"ctr {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    return ctr


# ---- set-up ------------------------------------------------------------------------------------
def prepare_network() -> None:
    """The node's addresses on `lo`, forwarding, bridged traffic through iptables (Services)."""
    # The API server reaches kubelet (logs, exec) by the node's host name first.
    with (lab.NETNS_ETC / "hosts").open("a") as hosts:  # in place: the bind mounts follow it
        hosts.write(f"{nc.NODE_IP} {nc.NODE_NAME}\n")
    for address in (nc.NODE_IP, nc.CLUSTER_DNS_IP):
        lab.sh(*lab.in_netns(["ip", "addr", "add", f"{address}/32", "dev", "lo"]))
    lab.sh(*lab.in_netns(["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
    bridged = subprocess.run(
        lab.in_netns(["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"]),
        capture_output=True,
        text=True,
        check=False,
    )
    note = "on" if bridged.returncode == 0 else f"not set ({bridged.stderr.strip()})"
    lab.log(
        f"node {nc.NODE_IP}, cluster DNS {nc.CLUSTER_DNS_IP} on lo; bridge-nf-call-iptables {note}"
    )


def cgroup_hierarchies() -> list[Path]:
    """The cgroup hierarchies under /sys/fs/cgroup: v1's, and cgroup2's `unified` (hybrid mode)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        mount_point, fs_type = fields[4], fields[fields.index("-") + 1]
        if fs_type in ("cgroup", "cgroup2") and mount_point.startswith(str(CGROUP_MOUNTS) + "/"):
            found.append(Path(mount_point))
    return found


def make_cgroup_root() -> None:
    """kubelet's cgroupRoot must exist; a new cpuset cgroup needs its parent's cpus and mems."""
    for hierarchy in cgroup_hierarchies():
        root = hierarchy / nc.CGROUP_ROOT.strip("/")
        root.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (root / name).exists() and not (root / name).read_text().strip():
                (root / name).write_text((hierarchy / name).read_text())


def write_configs() -> None:
    for directory in (
        PATHS.containerd_root,
        PATHS.containerd_state,
        PATHS.cni_conf_dir,
        PATHS.cni_ipam_dir,
        PATHS.kubelet_dir,
        PATHS.pod_logs,
        PATHS.volume_plugins,
    ):
        directory.mkdir(parents=True, exist_ok=True)
    PATHS.containerd_config.write_text(nc.containerd_config(PATHS))
    default_spec = subprocess.run(
        [str(lab.BIN / "ctr"), "oci", "spec"], capture_output=True, text=True, check=True
    ).stdout  # needs no containerd running
    PATHS.base_runtime_spec.write_text(
        json.dumps(nc.base_runtime_spec(json.loads(default_spec)), indent=2)
    )
    (PATHS.cni_conf_dir / "10-lab-pods.conflist").write_text(
        json.dumps(nc.cni_conflist(PATHS), indent=2)
    )
    PATHS.kubelet_config.write_text(json.dumps(nc.kubelet_config(PATHS), indent=2))
    PATHS.resolv_conf.write_text(nc.resolv_conf())
    PATHS.kube_proxy_config.write_text(json.dumps(nc.kube_proxy_config(lab.KUBECONFIG), indent=2))
    PATHS.corefile.write_text(nc.corefile(lab.KUBECONFIG))


def save_kernel_tunables() -> None:
    saved = {k: Path("/proc/sys", k).read_text().strip() for k in KERNEL_TUNABLES}
    SAVED_TUNABLES.write_text(json.dumps(saved))


def restore_kernel_tunables() -> None:
    if not SAVED_TUNABLES.exists():
        return
    saved: dict[str, str] = json.loads(SAVED_TUNABLES.read_text())
    changed = []
    for key, value in saved.items():
        if Path("/proc/sys", key).read_text().strip() != value:
            Path("/proc/sys", key).write_text(value + "\n")
            changed.append(f"{key}={value}")
    lab.log(f"kernel tunables kubelet set are back: {', '.join(changed) or 'none had changed'}")
    SAVED_TUNABLES.unlink()


def node_ready(the_lab: lab.Lab) -> bool:
    node = json.loads(
        the_lab.kubectl("get", "node", nc.NODE_NAME, "-o", "json", check=False, quiet=True) or "{}"
    )
    conditions = node.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def start_node(the_lab: lab.Lab, archives: dict[str, Path]) -> None:
    """containerd, the images, kubelet (until the Node is Ready), kube-proxy and CoreDNS."""
    phase = time.monotonic()
    prepare_network()
    make_cgroup_root()
    write_configs()
    holder = start_holder(the_lab)
    start_in_node(
        the_lab,
        holder,
        "containerd",
        [str(lab.BIN / "containerd"), f"--config={PATHS.containerd_config}"],
    )
    ctr = ctr_runner(holder)

    def answers() -> bool:
        try:
            ctr("version")
            return True
        except lab.LabError:
            return False

    the_lab.wait_for("containerd's socket", answers, timeout_s=60, every_s=0.5)
    started = time.monotonic()
    listed = import_images(ctr, archives, lab.LabError)
    lab.log(
        f"imported {len(archives)} images in {time.monotonic() - started:.0f}s: {', '.join(listed)}"
    )
    save_kernel_tunables()  # before kubelet changes them
    start_in_node(
        the_lab,
        holder,
        "kubelet",
        [
            str(lab.BIN / "kubelet"),
            f"--config={PATHS.kubelet_config}",
            f"--kubeconfig={lab.KUBECONFIG}",
            f"--root-dir={PATHS.kubelet_dir}",
            f"--cert-dir={PATHS.kubelet_dir / 'pki'}",
            f"--hostname-override={nc.NODE_NAME}",
            f"--node-ip={nc.NODE_IP}",
            "--v=1",
        ],
    )
    start_in_node(
        the_lab,
        holder,
        "kube-proxy",
        [str(lab.BIN / "kube-proxy"), f"--config={PATHS.kube_proxy_config}"],
    )
    start_in_node(
        the_lab, holder, "coredns", [str(lab.BIN / "coredns"), "-conf", str(PATHS.corefile)]
    )
    the_lab.wait_for(
        f"Node {nc.NODE_NAME} to be Ready (kubelet)",
        lambda: node_ready(the_lab),
        timeout_s=180,
        every_s=2,
    )
    lab.log(f"node {nc.NODE_NAME} Ready in {time.monotonic() - phase:.0f}s")


def check_node_built() -> dict[str, Path]:
    missing = [b for b in NODE_BINARIES if not (lab.BIN / b).exists()]
    if missing:
        raise SystemExit(f"k8s-node: not built yet ({', '.join(missing)}): run build.py")
    absent = [
        t
        for t in HOST_TOOLS
        if not any(Path(d, t).exists() for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"))
    ]
    if absent or not nc.CNI_PLUGIN_DIR.exists():
        raise SystemExit(
            f"k8s-node: missing {', '.join(absent) or nc.CNI_PLUGIN_DIR}: apt-get install runc "
            "containernetworking-plugins iptables conntrack busybox-static"
        )
    archives = build_node_images(lab.BIN, NODE_IMAGES_DIR)
    return {**archives, **helper_archives(IMAGES_DIR)}
