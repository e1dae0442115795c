"""Shared pieces of the benchmark: Kafka/Mongo helpers, processes, CPU accounting, stats.

Nothing here touches a developer's data: every run gets its own Kafka topics, consumer groups,
MongoDB databases and Redis keys (devkit/names.py), and deletes them at the end. What the
tests and scripts use too (names, ports, waiting, topics) is in devkit/.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

from devkit.kafka import KAFKA

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TMP = RESULTS / "tmp"
PY = sys.executable
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
MONGO_URL = "mongodb://127.0.0.1:27017/"
# Ports the benchmark may use for its own servers (peers, direct-ingress replicas, HAProxy stats).
PORT_RANGE = range(38000, 39000)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---- Kafka -----------------------------------------------------------------------------------


def topic_records(topic: str) -> int:
    """Records ever written to the topic: the sum of its partitions' high watermarks."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": f"bench-watermarks-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for partition in partitions:
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10
            )
            total += high
        return total
    finally:
        consumer.close()


def readable_records(topic: str, timeout_s: float = 180.0) -> int:
    """Records a read_committed reader gets from the topic, read to its end. Not the high
    watermarks: a batch's Kafka transaction leaves a marker offset in each partition it wrote
    to, and an aborted one records nobody reads (docs/decisions/0023-transactional-batches.md)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": f"bench-reader-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        remaining = {p: end for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in remaining])
        total = 0
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not read {topic} to its end within {timeout_s:.0f}s")
            total += sum(1 for m in consumer.consume(10_000, 0.5) if m.error() is None)
            for tp in consumer.position([TopicPartition(topic, p) for p in remaining]):
                if tp.offset >= remaining[tp.partition]:
                    remaining.pop(tp.partition)
        return total
    finally:
        consumer.close()


# ---- processes -------------------------------------------------------------------------------


def drop_mongo_database(name: str, timeout_s: float = 180.0) -> bool:
    """Drop a database of ours, bounded: FerretDB (SQLite) can take minutes on a large one, and
    a stuck drop must not hang the benchmark. True when it was dropped in time."""
    import threading

    from pymongo import MongoClient

    done = threading.Event()

    def drop() -> None:
        with contextlib.suppress(Exception):
            client: Any = MongoClient(
                MONGO_URL, serverSelectionTimeoutMS=5000, socketTimeoutMS=int(timeout_s * 1000)
            )
            client.drop_database(name)
            client.close()
            done.set()

    thread = threading.Thread(target=drop, name=f"drop-{name}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not done.is_set():
        log(f"could not drop MongoDB database {name} within {timeout_s:.0f}s: drop it by hand")
    return done.is_set()


def wait_for_count(
    read: Callable[[], int], target: int, timeout_s: float, stall_s: float = 60.0
) -> int:
    """Poll `read` until it reaches `target`; give up after timeout_s, or after stall_s without
    any progress (a stuck pool: waiting longer would only waste the run). Returns the last value."""
    deadline = time.monotonic() + timeout_s
    last, changed_at = None, time.monotonic()
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = read()
            if value >= target:
                return value
            if value != last:
                last, changed_at = value, time.monotonic()
        if time.monotonic() - changed_at > stall_s:
            log(f"no progress for {stall_s:.0f}s ({last}/{target}): giving up waiting")
            break
        time.sleep(0.1)
    return last if last is not None else -1


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


# ---- CPU accounting --------------------------------------------------------------------------


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
    groups of their own, but they stay in the session), classified by `classify`. Everything else on the machine (other sessions) shows up as `other_processes`:
    the machine's busy CPU minus ours, a measure of how noisy the repeat was.
    """

    def __init__(self, pids: dict[int, str] | None = None, groups: Iterable[int] = ()) -> None:
        self._pids = dict(pids or {})
        self._groups = set(groups)
        self._start: dict[int, tuple[str, float]] = {}
        self.seconds: dict[str, float] = {}
        self.wall_s = 0.0

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


# ---- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summarize(runs: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """Median of each key over the repeats, and its spread (min, max)."""
    summary: dict[str, Any] = {}
    for key in keys:
        values = [run[key] for run in runs if run.get(key) is not None]
        if not values:
            summary[key] = None
            continue
        summary[key] = round(statistics.median(values), 2)
        summary[f"{key}_min"] = round(min(values), 2)
        summary[f"{key}_max"] = round(max(values), 2)
    return summary


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    log(f"{what}: {time.monotonic() - started:.1f}s")
