"""Replicas and nodes follow the work, asserted from Ray's own state.

A bounded burst of votes goes straight into the pool's topic on a local autoscaling Ray cluster
(devkit/autoscale/ has the whole setup). The timeline recorded every ~2 s from
serve.status(), ray.nodes() and Kafka must show, in this order: the lag rises -> the pool's
replicas rise -> the autoscaler adds a worker node -> the lag drains -> the replicas and the node
go away; and every vote was counted exactly once.

The scenario runs in a child process with its own Ray cluster (never the suite's Ray instance)
and stops that cluster by PID, whatever happens.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devkit.autoscale.fake_cluster import CLIENT_ENV
from devkit.autoscale.spec import Row, ScenarioSpec
from devkit.autoscale.timeline import markdown_table

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_TIMEOUT_S = 780  # every step inside is bounded too; this bounds the whole


def run_scenario(out: Path, log: Path) -> dict[str, Any]:
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "devkit.autoscale", "--json", str(out)],
            cwd=ROOT,
            env=os.environ | CLIENT_ENV,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            process.wait(timeout=SCENARIO_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)  # it stops its cluster on the way out
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            pytest.fail(
                f"the scenario ran over {SCENARIO_TIMEOUT_S}s; log:\n"
                f"{log.read_text(errors='replace')[-5000:]}"
            )
    if not out.exists():
        pytest.fail(f"the scenario left no result; log:\n{log.read_text(errors='replace')[-5000:]}")
    return json.loads(out.read_text())


@pytest.mark.autoscaling
@pytest.mark.timeout(SCENARIO_TIMEOUT_S + 120)
def test_replicas_and_nodes_follow_a_burst_of_votes(stack: Any, tmp_path: Path) -> None:
    result = run_scenario(tmp_path / "result.json", tmp_path / "scenario.log")
    rows = [Row(**row) for row in result["rows"]]
    timeline = "\n" + markdown_table(rows)
    events = result["events"]
    print(f"events (t in s since the burst): {events}{timeline}")  # shown with -rP or -s
    assert result["failure"] is None, f"{result['failure']}; events {events}{timeline}"

    spec = ScenarioSpec()
    before = [row for row in rows if row.t < 0]
    assert before and all(row.pool == 1 and row.nodes == 1 for row in before), timeline

    # The order of things, as Ray reported them.
    assert events["lag_rose"] <= events["pool_up"], timeline
    assert events["pool_up"] < events["node_added"], timeline
    assert events["node_added"] < events["drained"], timeline
    # The new replicas run by the time the lag is gone, or in the same ~2 s sample: on a quiet
    # machine one replica drained 43,000 records in the seconds the others took to start.
    assert events["pool_running_up"] <= events["drained"], timeline
    assert events["drained"] < events["scaled_in"], timeline
    # No node before the pool asked for room, none beyond what the pool could use.
    assert all(row.nodes == 1 for row in rows if row.t < events["pool_up"]), timeline
    assert max(row.pool + row.pool_starting for row in rows) <= spec.pool_max_replicas, timeline
    assert max(row.nodes for row in rows) <= 1 + spec.cluster.max_workers, timeline
    last = rows[-1]
    assert (last.pool, last.pool_starting, last.nodes, last.lag) == (1, 0, 1, 0), timeline

    # Every vote produced was counted exactly once and stored exactly once.
    assert result["produce_errors"] == 0
    assert result["produced"] == spec.records
    assert result["redis_total"] == result["produced"], timeline
    assert result["mongo_count"] == result["produced"], timeline
