"""py-spy profiles of Serve's processes while a scenario runs: where each vote's CPU goes.

`make bench` (--profile) wraps every Serve scenario in a `Profiler`: it samples the ingress replica
and Serve's Python proxy (when the mode has one) for the scenario's whole window with
`py-spy record --format raw`, then folds the stacks into
- the functions with the most *own* time (the leaf frame of a sample), and
- the share of samples by layer (our code in serve_app/, Ray Serve, the web stack, pydantic,
  confluent-kafka, gRPC, asyncio/uvloop), counting a sample for the innermost layer that
  is not the event loop, so "ours" means time spent in serve_app's own frames.
The raw files stay next to the results (bench/results/profiles/) for flame graph tools.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from bench.harness.cpu import classify
from bench.harness.env import PY, ROOT, log
from bench.harness.processes import session_members

PY_SPY = Path(PY).parent / "py-spy"
PROFILED_ROLES = ("serve_ingress_replica", "serve_proxy")
SAMPLE_RATE_HZ = 100

# Layer of a frame, by the file it is in; the first pattern that matches wins.
LAYERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ours (serve_app)", re.compile(r"serve_app/")),
    ("confluent-kafka", re.compile(r"confluent_kafka/")),
    ("pydantic", re.compile(r"pydantic(_core)?/")),
    (
        "web stack (fastapi, starlette, uvicorn, h11/httptools)",
        re.compile(r"(fastapi|starlette|uvicorn|h11|httptools)/"),
    ),
    ("grpc", re.compile(r"grpc/")),
    ("ray serve", re.compile(r"ray/serve/")),
    ("ray core", re.compile(r"ray/")),
    ("asyncio / uvloop (the event loop)", re.compile(r"(asyncio|uvloop)/|selectors\.py")),
)
OTHER = "other (stdlib, json, logging, ...)"
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass
class Folded:
    """Samples of one process, folded by leaf function and by layer."""

    samples: int = 0
    own: Counter[str] = field(default_factory=Counter)
    layers: Counter[str] = field(default_factory=Counter)
    # Samples with the function anywhere on the stack (counted once per sample), by (name, file).
    inclusive: Counter[tuple[str, str]] = field(default_factory=Counter)

    def summary(self, top: int = 10) -> dict[str, Any]:
        if not self.samples:
            return {"samples": 0}
        return {
            "samples": self.samples,
            "top_own": [
                {"function": name, "share": round(n / self.samples, 3)}
                for name, n in self.own.most_common(top)
            ],
            "layers": {name: round(n / self.samples, 3) for name, n in self.layers.most_common()},
        }

    def inclusive_summary(self, file_part: str, top: int = 15) -> list[dict[str, Any]]:
        """The functions in files whose path contains `file_part`, by inclusive time."""
        if not self.samples:
            return []
        rows = [(key, n) for key, n in self.inclusive.most_common() if file_part in key[1]]
        return [
            {"function": f"{name} ({_short_file(file)})", "share": round(n / self.samples, 3)}
            for (name, file), n in rows[:top]
        ]


def _short_file(path: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", f"{ROOT}/", "/serve_app/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return path


def layer_of(file: str) -> str:
    for name, pattern in LAYERS:
        if pattern.search(file):
            return name
    return OTHER


def fold(lines: Iterable[str]) -> Folded:
    """Fold py-spy's raw output: `frame;frame;...;leaf count` per line, root first."""
    folded = Folded()
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [m for frame in stack.split(";") if (m := _FRAME.match(frame))]
        if not frames:
            continue
        folded.samples += count
        leaf = frames[-1]
        folded.own[f"{leaf['function']} ({_short_file(leaf['file'])})"] += count
        for key in {(frame["function"], frame["file"]) for frame in frames}:
            folded.inclusive[key] += count
        # The innermost frame outside the event loop machinery says whose work this is.
        layer = "asyncio / uvloop (the event loop)"
        for frame in reversed(frames):
            if ".py" not in frame["file"]:  # py-spy's process/thread pseudo-frames
                continue
            candidate = layer_of(frame["file"])
            if candidate != "asyncio / uvloop (the event loop)":
                layer = candidate
                break
        folded.layers[layer] += count
    return folded


class Profiler:
    """Samples the Serve processes of `session_pid`'s session for `duration_s` (context manager)."""

    def __init__(self, out_dir: Path, scenario: str, session_pid: int, duration_s: float) -> None:
        self.out_dir = out_dir
        self.scenario = scenario
        self.session_pid = session_pid
        self.duration_s = duration_s
        self.result: dict[str, Any] = {}
        self._running: list[tuple[str, int, Path, subprocess.Popen[bytes]]] = []

    @staticmethod
    def available() -> str | None:
        """None when py-spy can run here, else why not."""
        if not PY_SPY.exists() and shutil.which("py-spy") is None:
            return "py-spy is not installed (it is in the dev extras: make venv)"
        return None

    def __enter__(self) -> Self:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        program = str(PY_SPY) if PY_SPY.exists() else "py-spy"
        for proc in session_members(self.session_pid):
            role = classify(proc)
            if role not in PROFILED_ROLES:
                continue
            path = self.out_dir / f"{self.scenario}.{role}.{proc.pid}.txt"
            command = [
                program,
                "record",
                "--pid",
                str(proc.pid),
                "--rate",
                str(SAMPLE_RATE_HZ),
                "--duration",
                str(max(1, round(self.duration_s))),
                "--format",
                "raw",
                "--output",
                str(path),
                "--nonblocking",
            ]
            self._running.append(
                (
                    role,
                    proc.pid,
                    path,
                    subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
                )
            )
        return self

    def __exit__(self, *_exc: object) -> None:
        for role, pid, path, process in self._running:
            try:
                _, stderr = process.communicate(timeout=self.duration_s + 30)
            except subprocess.TimeoutExpired:
                process.kill()
                _, stderr = process.communicate()
            if not path.exists():
                log(
                    f"profile: py-spy wrote nothing for {role} (pid {pid}): "
                    f"{stderr.decode(errors='replace').strip()[-300:]}"
                )
                continue
            with path.open(errors="replace") as lines:
                summary = fold(lines).summary()
            summary["raw"] = str(path.relative_to(ROOT)) if ROOT in path.parents else str(path)
            # Several replicas of one role (autoscaling): keep the busiest.
            if summary.get("samples", 0) > self.result.get(role, {}).get("samples", -1):
                self.result[role] = summary


def markdown(scenarios: list[dict[str, Any]]) -> list[str]:
    """The report's profile section: layer shares and the top own-time functions per scenario."""
    lines: list[str] = []
    for scenario in scenarios:
        for role, summary in (scenario.get("profile") or {}).items():
            if not summary.get("samples"):
                continue
            layers = ", ".join(
                f"{name} {share:.0%}" for name, share in summary["layers"].items() if share >= 0.01
            )
            heading = (
                f"**{scenario['name']}, {role}** ({summary['samples']} samples at "
                f"{SAMPLE_RATE_HZ} Hz): {layers}"
            )
            lines += [heading, ""]
            lines += ["| own time | function |", "| ---: | --- |"]
            lines += [
                f"| {row['share']:.1%} | `{row['function']}` |" for row in summary["top_own"][:8]
            ]
            lines.append("")
    return lines
