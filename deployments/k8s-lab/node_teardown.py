"""Stopping the real node (node.py starts it): every process by PID, then mounts and cgroups.

kubelet, kube-proxy, CoreDNS and containerd stop first; then every process still in a pod cgroup
below /k8s-lab and every process left in the node's mount namespace (the shims, the holder) is
killed by PID, the /k8s-lab cgroups are removed and the sysctls kubelet set are written back.
clean_node_leftovers() does the same after a run killed with SIGKILL (node-holder records it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import lab
import node_config as nc
from node import HOLDER_FILE, cgroup_hierarchies, restore_kernel_tunables


def pids_in_cgroups() -> set[int]:
    pids: set[int] = set()
    for hierarchy in cgroup_hierarchies():
        root = hierarchy / nc.CGROUP_ROOT.strip("/")
        for procs in root.rglob("cgroup.procs") if root.exists() else []:
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except OSError:
                continue  # removed meanwhile
    return pids


def ours_in_mount_namespace(namespace: str) -> set[int]:
    """The node's processes: in its mount namespace and running our binaries or the holder."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                same = os.readlink(entry / "ns" / "mnt") == namespace
                exe = os.readlink(entry / "exe")
            except OSError:
                continue  # gone meanwhile, or a kernel thread
            if same and (exe.startswith(str(lab.BIN) + "/") or Path(exe).name == "sleep"):
                pids.add(int(entry.name))
    return pids


def kill_until_gone(what: str, find: Callable[[], set[int]], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while pids := find():
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            lab.log(f"WARNING: {what} still has processes {sorted(pids)}")
            return
        time.sleep(0.2)


def remove_cgroups() -> None:
    for hierarchy in cgroup_hierarchies():
        root = hierarchy / nc.CGROUP_ROOT.strip("/")
        if not root.exists():
            continue
        below = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for directory in [*below, root]:
            try:
                directory.rmdir()
            except OSError as exc:
                lab.log(f"WARNING: cgroup {directory} stays: {exc}")


def stop_node(the_lab: lab.Lab) -> None:
    """Every node process by PID: the node's own, the pods', the shims; then mounts and cgroups."""
    for name in ("coredns", "kube-proxy", "kubelet", "containerd"):
        proc = the_lab.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            lab.log(f"stopped {name} (pid {proc.pid})")
    kill_until_gone("the pods' cgroups", pids_in_cgroups)
    clean_node_leftovers()
    the_lab.procs.pop("node-holder", None)


def clean_node_leftovers() -> None:
    """Also after a SIGKILLed run: the mount namespace's processes (shims, holder), the cgroups."""
    if HOLDER_FILE.exists():
        pid_text, namespace = HOLDER_FILE.read_text().split()
        kill_until_gone("the node's mount namespace", lambda: ours_in_mount_namespace(namespace))
        lab.log(
            f"node mount namespace {namespace} emptied (holder pid {pid_text}): its mounts are gone"
        )
        HOLDER_FILE.unlink()
    kill_until_gone("the pods' cgroups", pids_in_cgroups)
    remove_cgroups()
    restore_kernel_tunables()
