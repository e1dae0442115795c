"""The load test and the benchmark still run and still reconcile: tiny, bounded smokes of both.

Not measurements (the numbers of a 10-second run on a busy CI machine mean nothing): they keep
`make loadtest` and `make bench` from rotting. The locust run goes against this session's Serve
app (the `pipeline` fixture) and must reconcile exactly; the benchmark runs two cheap scenarios.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Pipeline

pytestmark = pytest.mark.e2e


def run(command: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, timeout=timeout_s, capture_output=True, text=True, check=False
    )


def test_locust_over_http_and_grpc_reconciles_exactly(pipeline: Pipeline, tmp_path: Path) -> None:
    completed = run(
        [
            sys.executable,
            "-m",
            "loadtest.run",
            "--host",
            str(pipeline.http.base_url).rstrip("/"),
            "--grpc-target",
            pipeline.grpc_target,
            "--users",
            "4",
            "--spawn-rate",
            "4",
            "--run-time",
            "10s",
            "--think-time",
            "0.2",
            "--stop-timeout",
            "20",
            "--settle-timeout",
            "60",
            "--drain-timeout",
            "90",
            "--seed",
            "7",
            "--out",
            str(tmp_path),
        ],
        timeout_s=240,
    )
    output = completed.stdout[-4000:] + completed.stderr[-4000:]
    assert (tmp_path / "reconciliation.json").exists(), output
    report: dict[str, Any] = json.loads((tmp_path / "reconciliation.json").read_text())
    assert completed.returncode == 0, output
    assert report["exact"] and report["accepted"] > 0 and report["in_doubt"] == 0, report
    assert report["increase"] == report["accepted"]
    # Both users ran and reported to locust's statistics, per route and per RPC.
    stats = report["locust"]
    assert any(name.startswith("grpc ") for name in stats), stats
    assert any(name.startswith("POST ") for name in stats), stats


def test_bench_quick_runs_and_reconciles(stack: Any, tmp_path: Path) -> None:
    completed = run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--only",
            "kafka_producer_raw,redis_raw",
            "--warmup",
            "0.2",
            "--duration",
            "1",
            "--out",
            str(tmp_path),
        ],
        timeout_s=180,
    )
    output = completed.stdout[-4000:] + completed.stderr[-4000:]
    assert completed.returncode == 0, output
    data = json.loads((tmp_path / "latest.json").read_text())
    scenarios = {s["name"]: s for s in data["scenarios"]}
    assert set(scenarios) == {"kafka_producer_raw", "redis_raw"}, output
    for scenario in scenarios.values():
        assert scenario["reconciled"] and scenario["errors"] == 0, scenario
        assert scenario["votes_per_s"] > 0
    assert {"cpus", "loadavg_before"} <= set(data["machine"]) and data["config"]["quick"] is True
    report = (tmp_path / "latest.md").read_text()
    assert "| kafka_producer_raw |" in report and "## Performance targets" in report
    assert (tmp_path / "latest.png").stat().st_size > 0
