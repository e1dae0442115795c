"""CPU accounting: which part of the system each process is, and what it spent in a window."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import psutil


def classify(proc: psutil.Process) -> str | None:
    """Which part of the system a process is, for the CPU breakdown (None: not ours to show)."""
    try:
        title = proc.name() + " " + " ".join(proc.cmdline()[:1])
    except psutil.Error:
        return None
    if "VoteIngress" in title:
        return "serve_ingress_replica"
    if "VotePersister" in title:
        return "serve_pool_replica"
    if "ProxyActor" in title:
        return "serve_proxy"
    if "haproxy" in title:
        return "haproxy"
    if "ServeController" in title:
        return "serve_controller"
    if "SERVE_REPLICA" in title or "ServeReplica" in title:
        return "serve_other_replica"
    return "ray_system"  # gcs, raylet, dashboard, agents, log monitor: Ray's own overhead


class CpuMeter:
    """CPU seconds spent by each part of the system under test between start() and stop().

    Only processes we know are counted: `pids` (the stack's, a peer's) and the members of the
    sessions in `groups` (our own `serve run` and the Ray it started: Ray gives actors process
    groups of their own, but they stay in the session), classified by `classify`. Everything
    else on the machine (other sessions) shows up as `other_processes`: the machine's busy CPU
    minus ours, a measure of how noisy the repeat was.
    """

    def __init__(self, pids: dict[int, str] | None = None, groups: Iterable[int] = ()) -> None:
        self._pids = dict(pids or {})
        self._groups = set(groups)
        self._start: dict[int, tuple[str, float]] = {}
        self.seconds: dict[str, float] = {}
        self.wall_s = 0.0
        # The niceness each part's processes had at stop(): bench.harness.priority checks it.
        self.niceness: dict[str, list[int]] = {}

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        times = proc.cpu_times()
        return times.user + times.system

    @staticmethod
    def _busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def _snapshot(self) -> dict[int, tuple[str, float]]:
        snap = {}
        me = os.getpid()
        for proc in psutil.process_iter(["pid"]):
            kind = self._pids.get(proc.pid)
            if kind is None and self._groups:
                with contextlib.suppress(OSError):
                    if os.getsid(proc.pid) in self._groups:
                        kind = classify(proc)
            if kind is None and proc.pid == me:
                kind = "loadgen_and_bench"
            if kind is None:
                continue
            with contextlib.suppress(psutil.Error):
                snap[proc.pid] = (kind, self._cpu(proc))
        return snap

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._busy0 = self._busy()
        self._start = self._snapshot()

    def stop(self) -> dict[str, float]:
        end = self._snapshot()
        self.wall_s = time.monotonic() - self._t0
        seconds: dict[str, float] = {}
        for pid, (kind, cpu) in end.items():
            before = self._start[pid][1] if pid in self._start else 0.0
            seconds[kind] = seconds.get(kind, 0.0) + max(0.0, cpu - before)
        seen: dict[str, set[int]] = {}
        for pid, (kind, _cpu) in end.items():
            with contextlib.suppress(psutil.Error):
                seen.setdefault(kind, set()).add(psutil.Process(pid).nice())
        self.niceness = {kind: sorted(values) for kind, values in sorted(seen.items())}
        ours = sum(seconds.values())
        seconds["other_processes"] = max(0.0, self._busy() - self._busy0 - ours)
        self.seconds = {k: round(v, 2) for k, v in sorted(seconds.items())}
        return self.seconds


def stack_pids() -> dict[str, int]:
    """The local stack's processes, from its own pid files (deployments.local.stack's layout,
    VOTES_STACK_DIR included): kafka, redis, ferretdb. A part without a pid file is left out."""
    from deployments.local.stack import PARTS, Config
    from deployments.local.stack.processes import read_pid

    config = Config.from_env()
    pids = {}
    for part in PARTS:
        pid = read_pid(config.pid_path(part))
        if pid is not None:
            pids[part] = pid
    return pids


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) so far of each named process."""
    seconds = {}
    for part, pid in pids.items():
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            seconds[part] = times.user + times.system
    return seconds


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {part: round(max(0.0, after[part] - before.get(part, after[part])), 3) for part in after}


def machine_busy_share(interval_s: float = 1.0) -> float:
    """Share of all cores busy right now (0-1): how noisy the machine is before a measurement."""
    return psutil.cpu_percent(interval=interval_s) / 100.0


def replica_counts(sessions: list[int]) -> dict[str, int]:
    """Serve replicas alive in our own `serve run` (autoscaling changes them between repeats)."""
    counts: dict[str, int] = {}
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(proc.pid) in sessions:
                kind = classify(proc)
                if kind in ("serve_ingress_replica", "serve_pool_replica", "serve_proxy"):
                    counts[kind] = counts.get(kind, 0) + 1
    return counts


class MachineSampler:
    """The machine's busy CPU seconds, sampled every 0.1 s (for windows known only afterwards)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scale-sampler", daemon=True)

    @staticmethod
    def busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.busy()))
            self._stop.wait(0.1)

    def __enter__(self) -> MachineSampler:  # noqa: PYI034 - final class
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(2)

    def busy_between(self, start: float, end: float) -> float | None:
        """Busy CPU seconds of the whole machine between two moments (nearest samples)."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return None
        (t0, b0), (t1, b1) = inside[0], inside[-1]
        return (b1 - b0) * (end - start) / max(1e-9, t1 - t0)


# ---- threads ---------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu(pids: list[int]) -> dict[tuple[int, int], tuple[str, float]]:
    """CPU seconds so far of every thread of `pids`, by (pid, tid): (its group, seconds). The
    group is "main" for a process's main thread (the replica's event loop), else the thread's
    name (librdkafka's are rdk:*; Python's threads keep the process's name)."""
    threads = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = (task / "stat").read_text()
                    name = stat[stat.index("(") + 1 : stat.rindex(")")]
                    fields = stat[stat.rindex(")") + 2 :].split()
                    seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
                    tid = int(task.name)
                    threads[(pid, tid)] = ("main" if tid == pid else name, seconds)
    return threads


def thread_delta(
    before: dict[tuple[int, int], tuple[str, float]],
    after: dict[tuple[int, int], tuple[str, float]],
) -> dict[str, float]:
    groups: dict[str, float] = {}
    for key, (group, seconds) in after.items():
        groups[group] = groups.get(group, 0.0) + seconds - before.get(key, (group, 0.0))[1]
    return groups
