"""What a run of `make bench` writes besides its scenarios: the machine, the config, --merge."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from bench.harness.env import ROOT
from bench.harness.plan import group_of, order_scenarios
from bench.harness.report.latest import write_reports
from bench.harness.targets import evaluate_targets

if TYPE_CHECKING:
    from bench.harness.runner import Bench


def write(
    bench: Bench, chosen: list[str], modes: list[str], load_before: tuple[float, float, float]
) -> None:
    """latest.{json,md,png}: the scenarios (merged with the last run's under --merge), the
    targets, the machine and the config."""
    config = config_info(bench, chosen, modes)
    machine = machine_info(load_before)
    scenarios = merged(bench, config, machine) if bench.args.merge else list(bench.scenarios)
    data = {
        "scenarios": scenarios,
        "targets": evaluate_targets(scenarios),
        "machine": machine,
        "config": config,
    }
    write_reports(data, bench.args.out, chart=not bench.args.no_chart)


def merged(bench: Bench, config: dict[str, Any], machine: dict[str, Any]) -> list[dict[str, Any]]:
    """--merge: this run's scenarios replace their namesakes in the existing latest.json."""
    previous_file = bench.args.out / "latest.json"
    if not previous_file.exists():
        return list(bench.scenarios)
    previous = json.loads(previous_file.read_text())
    fresh = {s["name"] for s in bench.scenarios}
    fresh_groups = {group_of(name) for name in fresh}
    if "e2e" in fresh_groups:
        fresh_groups.add("system")  # the step that runs it is labelled system

    def stale_failure(name: str) -> bool:  # a step's failure record, measured again now
        step = name.split(" ")[0].split("[")[0]  # a step's label, or a variant's name
        return name.endswith(" (failed)") and (
            step in fresh_groups or group_of(step) in fresh_groups
        )

    kept = [
        s
        for s in previous.get("scenarios", [])
        if s["name"] not in fresh and not stale_failure(s["name"])
    ]
    scenarios = order_scenarios(kept + bench.scenarios)
    config["merged_with"] = {
        "when": previous.get("machine", {}).get("when"),
        "kept": [s["name"] for s in kept],
        "config": previous.get("config", {}).get("merged_with")
        or {k: previous.get("config", {}).get(k) for k in ("plan", "serve_modes")},
    }
    machine["merged_with_run_of"] = previous.get("machine", {}).get("when")
    return scenarios


def config_info(bench: Bench, chosen: list[str], modes: list[str]) -> dict[str, Any]:
    app = bench.config["applications"][0]
    return {
        "scenarios": chosen,
        "serve_modes": modes,
        "quick": bench.args.quick,
        "plan": vars(bench.plan),
        "serve_config": str(
            bench.args.serve_config.relative_to(ROOT)
            if bench.args.serve_config.is_relative_to(ROOT)
            else bench.args.serve_config
        ),
        "deployments": app.get("deployments"),
        "kafka_linger_ms": app.get("args", {}).get("kafka_linger_ms", "default (2.0)"),
        "overrides": {
            "ingress_max_ongoing": bench.args.ingress_max_ongoing,
            "ingress_replicas": bench.args.ingress_replicas,
            "pool_replicas": bench.args.pool_replicas,
            "app_args": bench.args.app_arg,
        },
        "system_load": bench.args.system_load,
        "niceness": bench.priority.niceness,
        # Threads whose niceness could not be changed (lowering one needs CAP_SYS_NICE).
        "niceness_refused": sorted(set(bench.priority.refused.values()))[:5],
        "expected_s": round(bench.expected_s),
        "took_s": round(time.monotonic() - bench.started),
        "loadgen": "bench.harness.loadgen: raw HTTP/1.1 keep-alive on uvloop / grpc.aio, "
        "closed loop, "
        "pre-encoded bodies; one process",
    }


def machine_info(load_before: tuple[float, float, float]) -> dict[str, Any]:
    import ray

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ray": ray.__version__,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "note": "shared machine: other sessions' load shows in loadavg and in each repeat's "
        "loadavg_1m_before",
    }
