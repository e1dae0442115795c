"""Child processes of the benchmark: each in a session of its own, stopped by its PID only."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import psutil

from bench.harness.env import ROOT, TMP


class Proc:
    """A child process in a session of its own, stopped by its PID (and its group) only."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path or TMP / f"{name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, first_signal: int = signal.SIGTERM, grace_s: float = 20.0) -> None:
        """Signal the process, wait, then kill what is left of its own process group."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, first_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace_s)
        # Its descendants (Ray's raylet, actors, HAProxy...) stay in its session, which is ours
        # alone (start_new_session), even where Ray gives them process groups of their own:
        # end what is left of it, process by process.
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
            members = session_members(self.pid)
            if not members:
                break
            for member in members:
                with contextlib.suppress(psutil.Error):
                    member.send_signal(sig)
            psutil.wait_procs(members, timeout=wait_s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(2)
        self._log.close()


def session_members(sid: int) -> list[psutil.Process]:
    """The live processes of session `sid` (a child we started with start_new_session)."""
    members = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
    return members
