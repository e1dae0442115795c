"""Several load-generator processes for `make bench-scale`, started together, summed afterwards.

One bench.harness.loadgen process tops out near one core; with more ingress replicas than one client
process can feed, the client would be what is measured. A `LoadFleet` starts P processes (spawn:
no forked gRPC or event-loop state), lets each build its request bodies, then starts their windows
at the same moment, so that their measured windows overlap and their rates add up. Each process
stays alive after its run until `release()`, so that a CPU meter stopped at the window's end still
sees it.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import time
from dataclasses import dataclass
from typing import Any

from bench.harness import loadgen
from bench.harness.loadgen import LoadResult
from bench.harness.payloads import Bodies, GrpcMessages

READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LoadSpec:
    """What every process of a fleet sends: the same path, its own share of the concurrency."""

    protocol: str  # "http" or "grpc"
    kind: str  # "single" or "batch"
    host: str
    http_port: int
    grpc_target: str
    concurrency: int  # requests in flight in each process
    warmup_s: float
    duration_s: float
    tag: str  # makes the single votes' vote_ids unique per repeat


def loadgen_processes(cpus: int | None, requested: int | None = None) -> int:
    """How many load-generator processes: as asked, else one per core but one (for the servers)."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"load-generator processes must be at least 1 (got {requested})")
        return requested
    return max(1, (cpus or 1) - 1)


def concurrency_per_process(per_replica: int, replicas: int, processes: int) -> int:
    """Requests in flight in each process: per_replica x replicas in all, split over processes."""
    if min(per_replica, replicas, processes) < 1:
        raise ValueError(
            f"per_replica, replicas and processes must be >= 1 "
            f"(got {per_replica}, {replicas}, {processes})"
        )
    return max(1, math.ceil(per_replica * replicas / processes))


def merge(results: list[LoadResult]) -> LoadResult:
    """The fleet's result: counts summed, latencies pooled, over the common window."""
    if not results:
        raise ValueError("no load results to merge")
    merged = LoadResult(results[0].duration_s)
    for result in results:
        merged.window_requests += result.window_requests
        merged.window_votes += result.window_votes
        merged.accepted_votes += result.accepted_votes
        merged.accepted_requests += result.accepted_requests
        merged.error_votes += result.error_votes
        merged.latencies_ms.extend(result.latencies_ms)
        if result.window_cpu_s is not None:  # the fleet's CPU: every process's, added up
            merged.window_cpu_s = (merged.window_cpu_s or 0.0) + result.window_cpu_s
        for kind, count in result.errors.items():
            merged.errors[kind] = merged.errors.get(kind, 0) + count
    return merged


def _child(spec: LoadSpec, index: int, start: Any, release: Any, results: Any) -> None:
    """One load-generator process: build the bodies, wait for the start, run, report, linger."""
    try:
        tag = f"{spec.tag}p{index}"
        if spec.protocol == "http":
            bodies = Bodies(spec.kind, tag)
            path = "/votes/batch" if spec.kind == "batch" else "/votes"
            results.put(("ready", index, None))
            if not start.wait(READY_TIMEOUT_S):
                return
            result = loadgen.run_http(
                spec.host,
                spec.http_port,
                path,
                bodies,
                concurrency=spec.concurrency,
                warmup_s=spec.warmup_s,
                duration_s=spec.duration_s,
            )
        else:
            messages = GrpcMessages(spec.kind, tag)
            results.put(("ready", index, None))
            if not start.wait(READY_TIMEOUT_S):
                return
            result = loadgen.run_grpc(
                spec.grpc_target,
                messages,
                concurrency=spec.concurrency,
                warmup_s=spec.warmup_s,
                duration_s=spec.duration_s,
            )
        results.put(("done", index, result))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the repeat
        results.put(("failed", index, f"{type(exc).__name__}: {exc}"))
    release.wait(READY_TIMEOUT_S)


class LoadFleet:
    """P processes sending `spec` together: prepare(), go(), collect(), release()."""

    def __init__(self, spec: LoadSpec, processes: int) -> None:
        self.spec = spec
        context = multiprocessing.get_context("spawn")
        self._start = context.Event()
        self._release = context.Event()
        self._results = context.Queue()
        self._procs = [
            context.Process(
                target=_child,
                name=f"scale-loadgen-{i}",
                args=(spec, i, self._start, self._release, self._results),
                daemon=True,
            )
            for i in range(processes)
        ]
        self.started_at: float | None = None

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self._procs if proc.pid is not None]

    def prepare(self) -> None:
        """Start the processes and wait until each has its bodies built (bounded)."""
        for proc in self._procs:
            proc.start()
        ready = 0
        deadline = time.monotonic() + READY_TIMEOUT_S
        while ready < len(self._procs):
            status, index, detail = self._next(deadline, "getting ready")
            if status == "failed":
                raise RuntimeError(f"load generator {index} failed: {detail}")
            ready += 1

    def go(self) -> float:
        """Open every process's window now; returns the moment (time.monotonic)."""
        self.started_at = time.monotonic()
        self._start.set()
        return self.started_at

    def collect(self) -> LoadResult:
        """Wait for every process's result (bounded: the window plus a request timeout)."""
        spec = self.spec
        deadline = (
            time.monotonic() + spec.warmup_s + spec.duration_s + loadgen.REQUEST_TIMEOUT_S + 60
        )
        results: list[LoadResult] = []
        failures = []
        while len(results) + len(failures) < len(self._procs):
            status, index, detail = self._next(deadline, "running")
            if status == "done":
                results.append(detail)
            elif status == "failed":
                failures.append(f"#{index}: {detail}")
        if failures:
            raise RuntimeError(f"load generators failed: {'; '.join(failures)}")
        return merge(results)

    def _next(self, deadline: float, doing: str) -> tuple[str, int, Any]:
        while True:
            try:
                return self._results.get(timeout=0.5)
            except queue.Empty:
                pass
            dead = [p.name for p in self._procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"load generator(s) {dead} died while {doing}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"load generators still {doing} at their deadline")

    def release(self) -> None:
        """Let the processes exit; end any that does not within a few seconds."""
        self._release.set()
        for proc in self._procs:
            if proc.pid is None:
                continue
            if self.started_at is None:  # released before go(): they must not start a load
                proc.terminate()
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        self._results.close()

    def __enter__(self) -> LoadFleet:  # noqa: PYI034 - final class
        return self

    def __exit__(self, *_: object) -> None:
        self.release()
