"""The Stack: up, down, start, stop and status of the three parts, under one lock."""

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from deployments.local.stack import processes
from deployments.local.stack.config import Config, show
from deployments.local.stack.errors import StackError
from deployments.local.stack.ferretdb import FerretDB
from deployments.local.stack.kafka import Kafka
from deployments.local.stack.postgresql import PostgreSQL
from deployments.local.stack.redis import Redis
from deployments.local.stack.service import Service

# Start order; `down` stops in reverse. Kafka is last because it is the slowest to become healthy.
PARTS: tuple[str, ...] = ("redis", "ferretdb", "kafka")
# With VOTES_STACK_FERRETDB_BACKEND=postgresql, PostgreSQL starts before FerretDB.
ALL_PARTS: tuple[str, ...] = ("redis", "postgresql", "ferretdb", "kafka")


def parts_for(config: Config) -> tuple[str, ...]:
    """The parts of a stack with this configuration, in start order."""
    return ALL_PARTS if config.ferretdb_backend == "postgresql" else PARTS


STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class PartStatus:
    part: str
    running: bool
    pid: int | None
    port: int
    healthy: bool
    detail: str = ""

    def line(self) -> str:
        state = "running" if self.running else "stopped"
        pid = f"pid {self.pid}" if self.pid else "-"
        health = "healthy" if self.healthy else "NOT healthy"
        detail = f"  ({self.detail})" if self.detail else ""
        return f"{self.part:<9} {state:<8} {pid:<11} 127.0.0.1:{self.port:<6} {health}{detail}"


class Stack:
    """Install, start, stop and check the local Kafka, Redis and FerretDB processes."""

    def __init__(self, config: Config | None = None, out: IO[str] | None = None):
        self.config = config or Config.from_env()
        self._out = out if out is not None else sys.stdout
        self.parts = parts_for(self.config)
        services = (Redis, PostgreSQL, FerretDB, Kafka)
        self.services: dict[str, Service] = {
            kind.name: kind(self.config, self._say) for kind in services
        }
        self._lock = processes.StackLock(self.config.lock_path, self._say)
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # started by this object

    @property
    def root(self) -> Path:
        return self.config.root

    def service(self, part: str) -> Service:
        try:
            return self.services[part]
        except KeyError:
            raise StackError(f"unknown part {part!r}; parts are {', '.join(ALL_PARTS)}") from None

    # ----- public API

    def up(self) -> None:
        """Install what is missing, start what is not running, wait until all parts are healthy."""
        with self._lock.held():
            started = [part for part in self.parts if self._launch(part)]
            for part in self.parts:
                self._wait_healthy(part, announce=part in started)
            cfg = self.config
            self._say(
                f"up: kafka {cfg.kafka_bootstrap} (topics {cfg.kafka_topic}, "
                f"{cfg.kafka_dlq_topic}), redis 127.0.0.1:{cfg.redis_port}, "
                f"mongodb 127.0.0.1:{cfg.mongo_port}"
            )

    def install(self) -> None:
        """Install every part that is missing, start nothing (what needs the network, done once)."""
        with self._lock.held():
            for part in self.parts:
                self._install(part)
            self._say(f"install: {', '.join(self.parts)} are installed under {self.root}")

    def down(self) -> None:
        """Stop the processes this stack started (pid files under run/); data is kept."""
        with self._lock.held():
            self._terminate(self._stoppable())

    def clean(self) -> None:
        """`down`, then delete data and logs; installed tools (jars, ferretdb binary) are kept."""
        with self._lock.held():
            self._terminate(self._stoppable())
            for path in (self.root / "data", self.root / "logs", self.root / "state"):
                if path.exists():
                    shutil.rmtree(path)
            self._say(f"deleted data and logs under {self.root}")

    def start(self, part: str) -> None:
        """Start one part (if it is not running) and wait until it is healthy."""
        self.service(part)  # validates the name
        with self._lock.held():
            started = self._launch(part)
            self._wait_healthy(part, announce=started)

    def stop(self, part: str) -> None:
        """Stop one part; its data is kept."""
        self.service(part)
        with self._lock.held():
            self._terminate([part])

    def kill(self, part: str) -> None:
        """SIGKILL one part, as a crash or an OOM kill would: no shutdown of its own; data kept.

        What it acknowledged but had only in its own memory is lost: the chaos tests use this to
        check that each store keeps what it acknowledged (tests/chaos/test_hard_kill.py).
        """
        self.service(part)
        with self._lock.held():
            pid = self._running_pid(part)
            if pid is None:
                self.config.pid_path(part).unlink(missing_ok=True)
                self._say(f"{part}: not running")
                return
            # Its whole process group (its own session, from launch): PostgreSQL's backends too,
            # as when a container is OOM-killed.
            processes.kill_group(pid)
            if not processes.wait_for_exit(pid, 10.0, every_s=0.05):
                raise StackError(f"{part} (pid {pid}) still runs 10 s after SIGKILL", part)
            self.config.pid_path(part).unlink(missing_ok=True)
            child = self._children.pop(part, None)
            if child is not None:
                child.poll()  # reap our own child so it does not linger as a zombie
            self._say(f"{part}: killed (pid {pid}, SIGKILL)")

    def is_healthy(self, part: str, timeout_s: float = 3.0) -> bool:
        """Whether the part answers its health check (whoever runs it)."""
        return self.service(part).health_problem(timeout_s) is None

    def status(self) -> list[PartStatus]:
        result = []
        for part in self.parts:
            service = self.service(part)
            pid = self._running_pid(part)
            port = service.ports()[0]
            if pid is None:
                taken = processes.port_holder(service.ports())
                detail = f"port {taken[0]} is in use by {taken[1]}, not ours" if taken else ""
                result.append(PartStatus(part, False, None, port, False, detail))
                continue
            problem = service.health_problem(timeout_s=3.0)
            result.append(PartStatus(part, True, pid, port, problem is None, problem or ""))
        return result

    # ----- starting

    def _install(self, part: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        gitignore = self.root / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text(
                "# Local dev stack (python -m deployments.local.stack): never commit.\n*\n"
            )
        self.service(part).install()

    def _launch(self, part: str) -> bool:
        """Start `part` in the background unless our process is already running; True if started."""
        service = self.service(part)
        pid = self._running_pid(part)
        if pid is not None:
            self._say(f"{part}: already running (pid {pid})")
            return False
        self.config.pid_path(part).unlink(missing_ok=True)  # stale: process gone or pid reused
        taken = processes.port_holder(service.ports())
        if taken:
            port, who = taken
            raise StackError(
                f"port 127.0.0.1:{port} needed by {part} is already in use by {who}, which this "
                f"stack did not start; stop that process or give {part} other ports "
                f"({service.port_variables})",
                part,
            )
        self._install(part)
        for path in (self.config.run_dir, service.log_path.parent, service.data_dir):
            path.mkdir(parents=True, exist_ok=True)
        service.prepare()
        process = processes.launch(
            service.command(),
            service.data_dir,
            service.log_path,
            f"stack: starting {part}",
            user=service.run_as(),
        )
        self._children[part] = process
        self.config.pid_path(part).write_text(f"{process.pid}\n")
        ports = ", ".join(f"127.0.0.1:{p}" for p in service.ports())
        self._say(f"{part}: started (pid {process.pid}, {ports}, log {show(service.log_path)})")
        return True

    def _wait_healthy(self, part: str, announce: bool) -> None:
        """Poll the health check until it passes; fail early if the process exits."""
        service = self.service(part)
        timeout = service.startup_timeout_s
        began = time.monotonic()
        waiting_said = False
        while True:
            if self._running_pid(part) is None:
                child = self._children.get(part)
                code = child.poll() if child is not None else None
                # Only a child that really exited is a failure: /proc can briefly disagree
                # with a process that is still starting up.
                if child is None or code is not None:
                    how = f" with exit code {code}" if code is not None else ""
                    raise StackError(f"{part} exited during startup{how}", part, service.log_path)
            problem = service.health_problem(timeout_s=3.0, provision=True)
            elapsed = time.monotonic() - began
            if problem is None:
                if announce:
                    self._say(f"{part}: healthy after {elapsed:.1f} s")
                return
            if elapsed > timeout:
                raise StackError(
                    f"{part} did not become healthy within {timeout:.0f} s (last check: {problem})",
                    part,
                    service.log_path,
                )
            if not waiting_said:
                self._say(f"{part}: waiting until healthy (up to {timeout:.0f} s) ...")
                waiting_said = True
            time.sleep(0.5)

    # ----- stopping

    def _stoppable(self) -> list[str]:
        """Our parts in stop order, and any other part still running (another backend's)."""
        return [
            part
            for part in reversed(ALL_PARTS)
            if part in self.parts or self._running_pid(part) is not None
        ]

    def _terminate(self, parts: Sequence[str]) -> None:
        """SIGTERM our processes, wait up to STOP_TIMEOUT_S, then SIGKILL; remove pid files."""
        pids: dict[str, int] = {}
        for part in parts:
            pid = self._running_pid(part)
            if pid is None:
                self.config.pid_path(part).unlink(missing_ok=True)
                self._say(f"{part}: not running")
                continue
            self._say(f"{part}: stopping (pid {pid}) ...")
            processes.send_signal(pid, signal.SIGTERM)
            pids[part] = pid
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for part, pid in pids.items():
            if not processes.wait_for_exit(pid, max(0.0, deadline - time.monotonic())):
                self._say(f"{part}: still running after {STOP_TIMEOUT_S:.0f} s, sending SIGKILL")
                processes.send_signal(pid, signal.SIGKILL)
                processes.wait_for_exit(pid, 5.0, every_s=0.1)
            self.config.pid_path(part).unlink(missing_ok=True)
            child = self._children.pop(part, None)
            if child is not None:
                child.poll()  # reap our own child so it does not linger as a zombie
            self._say(f"{part}: stopped")

    def _running_pid(self, part: str) -> int | None:
        """The pid from our pid file if that process is alive and is the one we started."""
        pid = processes.read_pid(self.config.pid_path(part))
        if pid is None or not processes.alive(pid):
            return None
        argv = processes.cmdline(pid)
        return pid if argv and self.service(part).is_ours(pid, argv) else None

    def _say(self, message: str) -> None:
        print(f"stack: {message}", file=self._out, flush=True)
