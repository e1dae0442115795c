"""The lab's ground floor: its paths and names, its log, and the Lab that runs its processes.

Every lab process runs inside the network namespace `k8s-lab` with HOME inside the lab
(lab_env). Lab starts them (recording their PIDs for the next run to clean up), stops them in
reverse order, runs kubectl against the lab's API server and waits for conditions with a deadline.
Used by lab.py (`make k8s-lab`) and the node_* modules (`make k8s-node`) through lab.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
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
PYTHON = REPO / ".venv" / "bin" / "python"
RAY_TMP = Path("/tmp/k8s-lab-ray")  # short: Ray's socket paths must stay under 108 bytes


def shown(path: Path) -> Path:
    """A path for the log: relative to the checkout when inside it (K8S_LAB_DIR may be outside)."""
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


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
        log(f"started {name} (pid {proc.pid}; log {shown(log_path)})")

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


def sh(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True)


def apply_docs(lab: Lab, docs: list[dict[str, Any]], name: str) -> None:
    path = RUN / f"{name}.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    lab.kubectl("apply", "--server-side", "-f", str(path))
