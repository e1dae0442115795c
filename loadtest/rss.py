"""Resident memory of every process of the system under test, by process class, and its growth.

    sampler = RssSampler(stack=stack_pids(), sessions=[serve_pid], extra={prom_pid: "prometheus"})
    first = sampler.sample()
    ...
    last = sampler.sample()
    rows = growth(first, last, limit_pct=10)

A process class is what bench.harness.cpu.classify calls it (ingress replicas, pool replicas, proxy,
HAProxy, controller), with Ray's own processes told apart by name (raylet, gcs_server, the
dashboard and its agents ...), plus the stack's parts (kafka, redis, ferretdb) from their pid
files. Growth compares the processes present in both samples (the same PIDs): a replica the
autoscaler added later does not count as growth of its class, it is listed as new.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.harness.cpu import classify

MB = 1024 * 1024

# Ray's own processes, by a word of their title or command line (checked in this order).
RAY_PARTS = (
    ("setup_worker.py", "ray_worker_setup"),
    ("gcs_server", "ray_gcs_server"),
    ("ray::DashboardAgent", "ray_dashboard_agent"),
    ("ray::RuntimeEnvAgent", "ray_runtime_env_agent"),
    ("ray::HAProxyManager", "serve_haproxy_manager"),
    ("ray::IDLE", "ray_idle_worker"),
    ("ray-dashboard-", "ray_dashboard_modules"),  # the dashboard's module processes (*Head)
    ("multiprocessing", "ray_dashboard_modules"),  # their forkserver and resource tracker
    ("dashboard/dashboard.py", "ray_dashboard"),
    ("log_monitor.py", "ray_log_monitor"),
    ("autoscaler/_private/monitor.py", "ray_monitor"),
    ("serve run", "serve_run_driver"),
    ("bin/serve", "serve_run_driver"),
)


def process_class(proc: psutil.Process) -> str | None:
    """bench.harness.cpu.classify, with its catch-all `ray_system` split into Ray's parts."""
    kind = classify(proc)
    if kind != "ray_system":
        return kind
    try:
        name = proc.name()
        text = name + " " + " ".join(proc.cmdline())
    except psutil.Error:
        return None
    if name == "raylet":
        return "ray_raylet"
    for word, part in RAY_PARTS:
        if word in text:
            return part
    return "ray_other"


@dataclass(frozen=True)
class Sample:
    at: float  # time.time()
    processes: dict[int, tuple[str, int]]  # pid -> (class, RSS bytes)
    titles: dict[int, str] = field(default_factory=dict)  # pid -> process title (for the report)

    def by_class(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for kind, rss in self.processes.values():
            totals[kind] = totals.get(kind, 0) + rss
        return totals

    def total(self) -> int:
        return sum(rss for _, rss in self.processes.values())


class RssSampler:
    """RSS of the stack's processes, of every member of the given Unix sessions (a `serve run`
    we started and its Ray), of the processes of a Ray session directory and their descendants
    (a Ray someone else started: its raylet, GCS and agents name the directory, the workers,
    replicas and HAProxy descend from them), and of extra named PIDs (Prometheus, locust)."""

    def __init__(
        self,
        stack: Mapping[str, int] | None = None,
        sessions: Iterable[int] = (),
        extra: Mapping[int, str] | None = None,
        ray_session_dir: Path | None = None,
    ) -> None:
        self.named = {pid: name for name, pid in (stack or {}).items()} | dict(extra or {})
        self.sessions = set(sessions)
        self.ray_session_dir = ray_session_dir

    def _ray_members(self) -> set[int]:
        if self.ray_session_dir is None:
            return set()
        marks = (f"--session-dir={self.ray_session_dir}", f"--session_dir={self.ray_session_dir}")
        members: set[int] = set()
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if any(arg in marks for arg in proc.info.get("cmdline") or []):
                members.add(proc.pid)
                with contextlib.suppress(psutil.Error):
                    members |= {child.pid for child in proc.children(recursive=True)}
        return members

    def sample(self) -> Sample:
        processes: dict[int, tuple[str, int]] = {}
        titles: dict[int, str] = {}
        ray_members = self._ray_members()
        for proc in psutil.process_iter(["pid"]):
            kind = self.named.get(proc.pid)
            if kind is None and (self.sessions or ray_members):
                with contextlib.suppress(OSError, psutil.Error):
                    if proc.pid in ray_members or os.getsid(proc.pid) in self.sessions:
                        kind = process_class(proc)
            if kind is None:
                continue
            with contextlib.suppress(psutil.Error):
                processes[proc.pid] = (kind, proc.memory_info().rss)
                titles[proc.pid] = " ".join(proc.cmdline())[:80] or proc.name()
        return Sample(time.time(), processes, titles)


@dataclass
class GrowthRow:
    process_class: str
    processes: int  # present in both samples
    start_mb: float
    end_mb: float
    growth_pct: float | None
    new: int = 0  # processes only in the end sample (added by the autoscaler, restarted)
    gone: int = 0  # processes only in the start sample
    flagged: bool = False
    explanation: str = ""
    pids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def growth(
    first: Sample,
    last: Sample,
    limit_pct: float = 10.0,
    explained: Mapping[str, str] | None = None,
    min_window_s: float = 0.0,
) -> list[GrowthRow]:
    """One row per process class: RSS of the same PIDs at both samples and its growth.

    A class whose growth is over limit_pct is flagged, unless `explained` gives the reason
    (then the reason is shown and the row is not a failure), or the samples are less than
    min_window_s apart: caches and pools still fill then, and a leak needs a longer run to show.
    """
    window_s = last.at - first.at
    too_short = (
        f"not judged: samples {window_s:.0f}s apart, under {min_window_s:.0f}s"
        if window_s < min_window_s
        else ""
    )
    classes = sorted(
        {kind for kind, _ in first.processes.values()}
        | {kind for kind, _ in last.processes.values()}
    )
    rows = []
    for kind in classes:
        before = {pid: rss for pid, (k, rss) in first.processes.items() if k == kind}
        after = {pid: rss for pid, (k, rss) in last.processes.items() if k == kind}
        both = sorted(before.keys() & after.keys())
        start = sum(before[pid] for pid in both)
        end = sum(after[pid] for pid in both)
        pct = round((end - start) / start * 100, 1) if start else None
        row = GrowthRow(
            process_class=kind,
            processes=len(both),
            start_mb=round(start / MB, 1),
            end_mb=round(end / MB, 1),
            growth_pct=pct,
            new=len(after.keys() - before.keys()),
            gone=len(before.keys() - after.keys()),
            pids=both,
        )
        if pct is not None and pct > limit_pct:
            reason = too_short or (explained or {}).get(kind, "")
            row.flagged = not reason
            row.explanation = reason
        rows.append(row)
    return rows


def per_process(first: Sample, last: Sample) -> list[dict[str, Any]]:
    """Every process of either sample: class, RSS at start and end (MB), for the JSON report."""
    rows = []
    for pid in sorted(first.processes.keys() | last.processes.keys()):
        kind = (last.processes.get(pid) or first.processes[pid])[0]
        start = first.processes.get(pid, (kind, None))[1]
        end = last.processes.get(pid, (kind, None))[1]
        title = last.titles.get(pid) or first.titles.get(pid, "")
        rows.append(
            {
                "pid": pid,
                "class": kind,
                "title": title,
                "start_mb": None if start is None else round(start / MB, 1),
                "end_mb": None if end is None else round(end / MB, 1),
            }
        )
    return rows


def markdown_table(rows: Iterable[GrowthRow], limit_pct: float) -> str:
    lines = [
        (
            "| process class | processes | RSS start (MB) | RSS end (MB) | growth | new / gone "
            "| verdict |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        pct = "n/a" if row.growth_pct is None else f"{row.growth_pct:+.1f}%"
        if row.flagged:
            verdict = f"FINDING: over {limit_pct:g}%"
        elif row.explanation:
            verdict = f"over {limit_pct:g}%, explained: {row.explanation}"
        else:
            verdict = "ok"
        lines.append(
            f"| {row.process_class} | {row.processes} | {row.start_mb:.1f} | "
            f"{row.end_mb:.1f} | {pct} | {row.new} / {row.gone} | {verdict} |"
        )
    return "\n".join(lines)


def process_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """per_process() as Markdown: one row per PID."""

    def mb(value: Any) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines = [
        "| pid | class | RSS start (MB) | RSS end (MB) | process |",
        "| ---: | --- | ---: | ---: | --- |",
    ]
    lines += [
        f"| {row['pid']} | {row['class']} | {mb(row['start_mb'])} | {mb(row['end_mb'])} | "
        f"`{str(row.get('title', '')).replace('|', '/')[:60]}` |"
        for row in rows
    ]
    return "\n".join(lines)
