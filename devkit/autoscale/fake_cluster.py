"""A local autoscaling Ray cluster: the real autoscaler with Ray's fake multi-node provider.

`ray.cluster_utils.AutoscalingCluster` would do this, but it reads a base config the Ray 2.60 wheel
does not ship and runs `ray stop --force` (which ends every Ray process on the machine). This
starts the same thing by hand and stops only what it started:

- `ray start --head --block --autoscaling-config=FILE` with RAY_FAKE_CLUSTER=1, on ports of its
  own (never 6379, the local stack's Redis) and a temp dir of its own;
- the autoscaler (monitor.py, a child of that head) adds a "node" by starting another raylet on
  this machine with the node type's resources, and removes it after idle_timeout_minutes;
- stop() signals, by PID, the head's process tree plus every process whose command line carries
  this cluster's unique temp dir (fake nodes' raylets and their workers, even if re-parented).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devkit.net import ANY_PORT, free_port
from serve_app import serve_env

VENV_BIN = Path(sys.executable).parent
HEAD_NODE_TYPE = "ray.head.default"
WORKER_NODE_TYPE = "ray.worker.cpu"
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # small: the app moves no objects, and nodes share RAM

# What the cluster's processes and any driver connecting to it need in their environment (set it
# before `import ray`):
CLIENT_ENV = {
    # Keep every address on 127.0.0.1: with this off, Ray uses loopback as the node IP instead
    # of the machine's outward address (the fake nodes are all on this machine anyway).
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # Ray reads the mode at import; the token file (client_env) can come later, before ray.init.
    "RAY_AUTH_MODE": "token",
}


@dataclass
class ClusterSpec:
    head_cpus: float = 2
    worker_cpus: float = 1
    max_workers: int = 2
    idle_timeout_minutes: float = 0.2
    # Ports the person running the demo may want to open; taken ones fall back to free ones.
    gcs_port: int = 48379
    dashboard_port: int = 48265
    # The dashboard is for a person watching; a test saves its CPU (nothing here needs it).
    include_dashboard: bool = True
    env: dict[str, str] = field(default_factory=dict)


def autoscaling_config(spec: ClusterSpec, gcs_address: str) -> dict[str, Any]:
    """The fake-provider cluster config (the shape of Ray's fake_multi_node/example.yaml)."""
    return {
        "cluster_name": "votes-autoscaling",
        "max_workers": spec.max_workers,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": spec.idle_timeout_minutes,
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            # Fake nodes join this GCS; the provider's default is <this host>:6379, i.e. Redis.
            "gcs_address": gcs_address,
        },
        "available_node_types": {
            HEAD_NODE_TYPE: {
                "resources": {"CPU": spec.head_cpus},
                "node_config": {},
                "max_workers": 0,
            },
            WORKER_NODE_TYPE: {
                "resources": {"CPU": spec.worker_cpus, "object_store_memory": OBJECT_STORE_BYTES},
                "node_config": {},
                "min_workers": 0,
                "max_workers": spec.max_workers,
            },
        },
        "head_node_type": HEAD_NODE_TYPE,
        "auth": {},
        "docker": {},
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
    }


class FakeCluster:
    def __init__(self, spec: ClusterSpec | None = None) -> None:
        self.spec = spec or ClusterSpec()
        # Short: Ray puts unix sockets under it (108-byte path limit). Unique: stop() uses it
        # to recognise this cluster's processes.
        self.temp_dir = Path(tempfile.gettempdir()) / f"vas-{uuid.uuid4().hex[:8]}"
        self.gcs_port = 0
        self.dashboard_port = 0
        self._head: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def log_path(self) -> Path:
        return self.temp_dir / "ray-start.log"

    @property
    def token_file(self) -> Path:
        return self.temp_dir / "auth_token"

    def client_env(self) -> dict[str, str]:
        """What a driver connecting to this cluster needs in os.environ before `import ray`."""
        return CLIENT_ENV | serve_env.ray_token_env(self.token_file)

    def start(self, timeout_s: float = 120, attempts: int = 3) -> None:
        """Start the head (and its autoscaler); a head that times out is retried.

        On a loaded machine a raylet can miss Ray's fixed 30 s registration window and
        `ray start` gives up; the processes of a failed attempt are stopped before the next.
        """
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(timeout_s)
                return
            except ClusterStartError:
                self._kill()
                if attempt == attempts:
                    raise

    def _start_once(self, timeout_s: float) -> None:
        self.gcs_port = free_port((self.spec.gcs_port, ANY_PORT))
        self.dashboard_port = free_port((self.spec.dashboard_port, ANY_PORT))
        config_path = self.temp_dir / "autoscaling.json"
        config_path.write_text(json.dumps(autoscaling_config(self.spec, self.address)))
        command = [
            str(VENV_BIN / "ray"),
            "start",
            "--head",
            "--block",
            f"--port={self.gcs_port}",
            f"--autoscaling-config={config_path}",
            f"--num-cpus={self.spec.head_cpus:g}",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            f"--temp-dir={self.temp_dir}",
            f"--include-dashboard={self.spec.include_dashboard}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            # Every default port of a head is moved off what a developer's Ray may hold.
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            "--disable-usage-stats",
        ]
        started = (
            self.log_path.read_text(errors="replace").count("Ray runtime started")
            if self.log_path.exists()
            else 0
        )
        # Serve's own proxy, not serve_app.serve_env's HAProxy mode (which a test session may have
        # put in os.environ): every fake node would start an HAProxy on the same machine's ports.
        inherited = {
            k: v
            for k, v in os.environ.items()
            if k not in serve_env.SERVE_ENV and not k.startswith("RAY_AUTH_")
        }
        env = (
            inherited
            | self.client_env()
            | {
                "RAY_FAKE_CLUSTER": "1",
                "AUTOSCALER_UPDATE_INTERVAL_S": "1",  # autoscaler loop every 1 s instead of 5 s
                "RAY_USAGE_STATS_ENABLED": "0",
            }
            | self.spec.env
        )
        if self._log is not None:
            self._log.close()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._head = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._head.poll() is not None:
                raise ClusterStartError(
                    f"ray start exited ({self._head.returncode}): "
                    f"{self.log_path.read_text()[-3000:]}"
                )
            if self.log_path.read_text(errors="replace").count("Ray runtime started") > started:
                return
            time.sleep(0.5)
        raise ClusterStartError(
            f"ray start not ready in {timeout_s:.0f}s: {self.log_path.read_text()[-3000:]}"
        )

    # ---- stopping, by PID only ------------------------------------------------------------

    def pids(self) -> set[int]:
        """This cluster's processes: the head's tree, and whatever carries its temp dir."""
        parents: dict[int, int] = {}
        mine: set[int] = set()
        marker = str(self.temp_dir).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                stat = (entry / "stat").read_text()
                parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
                if marker in (entry / "cmdline").read_bytes():
                    mine.add(pid)
            except (OSError, ValueError, IndexError):
                continue
        if self._head is not None and self._head.poll() is None:
            mine.add(self._head.pid)
        grew = True
        while grew:
            children = {pid for pid, parent in parents.items() if parent in mine} - mine
            grew = bool(children)
            mine |= children
        mine.discard(os.getpid())
        return mine

    def stop(self, grace_s: float = 10) -> None:
        """SIGTERM this cluster's processes, SIGKILL what is left; remove its temp dir."""
        if not self.temp_dir.exists():
            return
        self._kill(grace_s)
        if self._log is not None:
            self._log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _kill(self, grace_s: float = 10) -> None:
        pids = self.pids()
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5)):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if self._head is not None:
                    self._head.poll()  # reap it
                pids = {pid for pid in pids if _alive(pid)}
                if not pids:
                    break
                time.sleep(0.2)
            pids |= self.pids()  # late children of what was just signalled
            if not pids:
                break


class ClusterStartError(RuntimeError):
    pass


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
