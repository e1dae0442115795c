"""`make bench-scale`'s persist: 1..6 consumers draining one preloaded topic, each repeat in a
fresh group, with the machine's CPU over the drain."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bench.harness.cpu import MachineSampler
from bench.harness.env import log
from bench.harness.report.scale import cpu_shares, point_cpu
from bench.harness.summary import summarize_runs
from bench.scenarios.persist import persist_run, preload
from devkit.kafka import PARTITIONS, create_topics

if TYPE_CHECKING:
    from bench.scenarios.scale.run import ScaleBench


def measure(scale: ScaleBench) -> None:
    """persist_xN for each consumer count of the plan, on one preloaded topic."""
    topic = scale.names.topic_for("persist")
    scale.topics += [topic, topic + ".dlq"]
    create_topics([topic])
    create_topics([topic + ".dlq"], partitions=1)
    log(f"persist: preloading {scale.plan.persist_records} records into {PARTITIONS} partitions")
    records = preload(topic, scale.plan.persist_records)
    timeout = max(60.0, records / 200)
    for consumers in scale.plan.consumers:

        def one(c: int = consumers) -> dict[str, Any]:
            run_id = time.monotonic_ns() % 10**8
            database = scale.names.mongo_database_for(f"persist_{c}_{run_id}")
            scale.mongo_databases.append(database)  # persist_run drops it; this is a backstop
            group = scale.names.group_for(f"persist-{c}-{run_id}")
            scale.groups.append(group)
            with MachineSampler() as sampler:
                called = time.monotonic()
                result = persist_run(
                    topic, group, database, scale.args.redis_db, records, c, timeout
                )
            return result | persist_cpu(scale, result, sampler, called)

        name = f"persist_x{consumers}"
        runs = scale.repeats(name, one)
        busy, shares = point_cpu(runs)
        scale.persist_points.append(
            summarize_runs(name, runs)
            | {
                "series": "persist",
                "size": consumers,
                "busy_share": busy,
                "cpu_share": shares,
                "records": records,
            }
        )


def persist_cpu(
    scale: ScaleBench, result: dict[str, Any], sampler: MachineSampler, called: float
) -> dict[str, Any]:
    """Shares of the machine during the drain (first counted vote to the last)."""
    window = result.get("cpu_window") or {}
    drain_s = float(result.get("drain_s") or 0)
    if not window.get("votes") or drain_s <= 0:
        return {}
    ours = dict(window.get("cpu_s") or {})
    start = called + float(result.get("startup_s") or 0)
    machine = sampler.busy_between(start, start + drain_s)
    if machine is not None:  # the sampled window is approximate: never more than all cores
        machine = min(machine, drain_s * scale.cores)
        ours["other_processes"] = round(max(0.0, machine - sum(ours.values())), 3)
    return {"cpu_share": cpu_shares(ours, drain_s, scale.cores)}


# -- all --
