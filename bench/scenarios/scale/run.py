"""`make bench-scale`'s run: its repeats, the two parts in order, the clean-up and the report."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import yaml

from bench.harness.cpu import stack_pids
from bench.harness.env import log
from bench.harness.report.scale import add_efficiency, write_reports
from bench.harness.results import machine_info
from bench.harness.stores import (
    check_stack,
    clear_votes_db,
    drop_mongo_database,
    refuse_foreign_keys,
)
from bench.harness.summary import failed, short
from bench.scenarios.scale import ingest, persist
from bench.scenarios.scale.options import make_plan, parse_args
from bench.scenarios.scale.serving import INGEST_APP, SERVE_MODE
from devkit.kafka import KAFKA, PARTITIONS, delete_topics
from devkit.names import RunNames


class ScaleBench:
    """One run of `make bench-scale`: what it made (to remove at the end) and what it measured."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.config = yaml.safe_load(args.serve_config.read_text())
        self.cores = os.cpu_count() or 1
        self.plan = make_plan(args, self.cores)
        self.names = RunNames("scale")
        self.topics: list[str] = []
        self.mongo_databases: list[str] = []
        self.groups: list[str] = []
        self.ingest_points: list[dict[str, Any]] = []
        self.persist_points: list[dict[str, Any]] = []
        self.ingress_num_cpus: dict[int, float] = {}
        self.failures: list[str] = []
        self.started = time.monotonic()

    # -- shared --

    def repeats(self, name: str, one: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
        """The repeats of a point; one during which a stack part restarted runs again, once."""
        runs = []
        for index in range(self.plan.repeats):
            for attempt in range(2):
                before = stack_pids()
                try:
                    result = one()
                except Exception as exc:  # noqa: BLE001 - reported as a failed repeat
                    result = failed(exc)
                disturbed = stack_pids() != before
                if disturbed and attempt == 0:
                    log(f"{name} #{index + 1}: a stack part restarted meanwhile; running it again")
                    continue
                result["disturbed"] = disturbed
                break
            log(f"{name} #{index + 1}/{self.plan.repeats}: {short(result)}")
            runs.append(result)
        return runs

    # -- ingest --

    def run(self) -> int:
        check_stack()
        refuse_foreign_keys(self.args.redis_db, "--redis-db")
        plan = self.plan
        log(f"run {self.names.run_id} on {self.cores} cores: {plan}")
        load_before = os.getloadavg()
        failures = self.failures
        try:
            for what, step, skip in (
                ("ingest", ingest.measure, self.args.skip_ingest),
                ("persist", persist.measure, self.args.skip_persist),
            ):
                if skip:
                    continue
                try:
                    step(self)
                except Exception as exc:  # noqa: BLE001 - one broken part must not hide the other
                    log(f"{what}: FAILED: {type(exc).__name__}: {exc}")
                    failures.append(f"{what}: {type(exc).__name__}: {exc}")
        finally:
            log("cleaning up: topics, consumer groups, MongoDB databases, Redis keys")
            delete_topics(self.topics)
            delete_groups(self.groups)
            clear_votes_db(self.args.redis_db)
            for database in self.mongo_databases:
                drop_mongo_database(database, timeout_s=60)
        add_efficiency(self.ingest_points)
        add_efficiency(self.persist_points)
        data = {
            "ingest": self.ingest_points,
            "persist": self.persist_points,
            "machine": machine_info(load_before),
            "config": {
                "quick": self.args.quick,
                "plan": asdict(plan),
                "serve_mode": SERVE_MODE,
                "app": INGEST_APP,
                "ingress_num_cpus": self.ingress_num_cpus,
                "loadgen_processes": plan.loadgen_processes,
                "persist_records": plan.persist_records,
                "partitions": PARTITIONS,
                "failures": failures,
            },
        }
        write_reports(data, self.args.out, chart=not self.args.no_chart)
        unclean = [
            p["name"]
            for p in [*self.ingest_points, *self.persist_points]
            if p.get("errors") or not p.get("reconciled")
        ]
        log(
            f"done in {time.monotonic() - self.started:.0f} s; wrote {self.args.out}/scale.*"
            + (f"; NOT clean: {', '.join(unclean)}" if unclean else "")
            + (f"; failed: {'; '.join(failures)}" if failures else "")
        )
        return 1 if unclean or failures else 0


def delete_groups(groups: list[str]) -> None:
    """Delete our consumer groups, best effort (their consumers have stopped)."""
    if not groups:
        return
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": KAFKA})
    for future in admin.delete_consumer_groups(groups, request_timeout=30).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = ScaleBench(args)
    # A plain SIGTERM (timeout, a closed terminal) would skip the clean-up in the finally blocks.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return bench.run()
    except KeyboardInterrupt:
        log("interrupted")
        return 130
