"""The lab's network namespace and its lifetime: made, cleaned after a crash, torn down on exit.

Only `lo` lives in the namespace `k8s-lab`, so nothing the lab starts can leave the machine.
Teardown always runs (Ctrl-C, SIGTERM, SIGHUP, failure): it deletes the votes namespace, stops
every process by PID in reverse order and removes the network namespace and its /etc/netns files.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab_core import BIN, NAMESPACE, NETNS, NETNS_ETC, RAY_TMP, RUN, Lab, log, section, sh


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
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if NETNS in listed.stdout:
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
