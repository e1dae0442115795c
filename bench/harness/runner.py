"""`make bench`'s run: the repeats of each scenario, their records, the steps in order."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import yaml

from bench.harness import measure, results, serving
from bench.harness.cpu import CpuMeter, replica_counts, stack_pids
from bench.harness.env import log
from bench.harness.plan import (
    PROFILED_GROUPS,
    duration_text,
    estimate_s,
    group_of,
    make_plan,
    selected,
    serve_modes,
    suffix_of,
)
from bench.harness.priority import Priority, own_niceness
from bench.harness.processes import session_members
from bench.harness.profile import Profiler
from bench.harness.serve_instance import ServeInstance
from bench.harness.serving import own_ports
from bench.harness.stores import check_stack
from bench.harness.summary import failed, short, summarize_runs
from bench.harness.variants import Variants, interleaved
from devkit.kafka import create_topics, delete_topics
from devkit.names import RunNames


class Bench:
    """One run of `make bench`: its plan, what it made (topics: removed at the end), the
    processes the CPU meter counts, and the scenarios measured; bench/scenarios/* fill it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.config = yaml.safe_load(args.serve_config.read_text())
        self.plan = make_plan(args, self.config)
        self.names = RunNames("bench")
        self.scenarios: list[dict[str, Any]] = []
        self.topics: list[str] = []
        self.started = time.monotonic()
        self.expected_s = 0.0
        # What the CPU meter counts besides the stack: a peer's pid, our serve run's process group.
        self.measured_pids: dict[int, str] = {}
        self.measured_groups: list[int] = []
        # Scenarios profiled already; `profiling`: the repeat running now is the profiled one.
        self.profiled: set[str] = set()
        self.profiling = False
        self.profiled_runs: dict[str, dict[str, Any]] = {}
        # system_*: the rate the lag-bounded load ended at, where the next repeat starts.
        self.system_rates: dict[str, float] = {}
        # Every measured process at one niceness (--niceness, else the bench's own): 0026.
        niceness = getattr(args, "niceness", None)
        self.priority = Priority(own_niceness() if niceness is None else niceness)
        if args.profile and (why := Profiler.available()):
            log(f"profiles: off ({why})")
            args.profile = False
        if args.profile and not args.merge:  # raw stacks of this run only (git-ignored)
            shutil.rmtree(args.out / "profiles", ignore_errors=True)

    # -- bookkeeping --

    def stack_pids(self) -> dict[str, int]:
        return stack_pids()  # the module function: restarts of a stack part show as new pids

    def progress(self) -> str:
        return (
            f"{duration_text(time.monotonic() - self.started)} of ~{duration_text(self.expected_s)}"
        )

    def repeat(
        self,
        name: str,
        run: Callable[[], dict[str, Any]],
        repeats: int | None = None,
        numbered: tuple[int, int] | None = None,
    ) -> list[dict[str, Any]]:
        """Run the repeats of a scenario (its plan's, or `repeats`); a repeat during which a stack
        part restarted (another session's fault test) is thrown away and run again, once.
        `numbered`: one repeat's place among its scenario's (k, n), for the log (variants).
        A Serve scenario (--profile) first runs one extra repeat under py-spy, kept apart in
        `profiled_runs` and not counted: the sampling costs the sampled process CPU."""
        wanted = self.args.profile and self.measured_groups and name not in self.profiled
        if wanted and group_of(name) in PROFILED_GROUPS:  # the ones measure.ingest loads
            self.profiled.add(name)
            self.profiling = True
            try:
                self.profiled_runs[name] = self.measured(name, run, "profiled, not counted")
            finally:
                self.profiling = False
        runs = []
        repeats = self.plan.repeats_of(name) if repeats is None else repeats
        for index in range(repeats):
            place, total = numbered or (index + 1, repeats)
            runs.append(self.measured(name, run, f"{place}/{total}"))
        return runs

    def measured(self, name: str, run: Callable[[], dict[str, Any]], label: str) -> dict[str, Any]:
        """One repeat with its CPU breakdown; run again once if a stack part restarted."""
        for attempt in range(2):
            pids = self.stack_pids()
            self.align_priority(pids)
            load = os.getloadavg()[0]
            meter = CpuMeter(
                {pid: part for part, pid in pids.items() if pid} | self.measured_pids,
                self.measured_groups,
            )
            meter.start()
            try:
                result = run()
            except Exception as exc:  # noqa: BLE001 - reported as a failed repeat
                log(f"{name} #{label}: FAILED: {type(exc).__name__}: {exc}")
                result = failed(exc)
            result["cpu_s"] = meter.stop() | result.pop("extra_cpu_s", {})
            result["wall_s"] = round(meter.wall_s, 2)
            result["niceness"] = meter.niceness
            if self.measured_groups:
                result["replicas_at_end"] = replica_counts(self.measured_groups)
            result["loadavg_1m_before"] = round(load, 2)
            disturbed = self.stack_pids() != pids
            if disturbed and attempt == 0:
                log(f"{name} #{label}: a stack part restarted meanwhile; running it again")
                continue
            result["disturbed"] = disturbed
            break
        log(f"{name} #{label}: {short(result)} [{self.progress()}]")
        return result

    def align_priority(self, stack: dict[str, int]) -> None:
        """The stack, the peer, our `serve run`'s session and this process at one niceness."""
        members = [p.pid for group in self.measured_groups for p in session_members(group)]
        self.priority.align([*stack.values(), *self.measured_pids, *members, os.getpid()])

    def record(self, name: str, runs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        profiled = self.profiled_runs.pop(name, None)
        if profiled is not None:
            if profiled.get("profile"):
                extra["profile"] = profiled.pop("profile")
            extra["profiled_run"] = profiled  # its rate is not in the medians
        scenario = (
            summarize_runs(name, runs)
            | extra
            | {
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "plan": {
                    "warmup_s": self.plan.warmup_s,
                    "duration_s": self.plan.duration_s,
                    "batch_duration_s": self.plan.batch_duration_s,
                    "repeats": self.plan.repeats_of(name),
                },
            }
        )
        self.scenarios.append(scenario)
        return scenario

    def variant_repeats(
        self,
        variants: Variants,
        chosen: list[str],
        names: dict[str, str],
        run: Callable[[str], dict[str, Any]],
        repeats: int,
    ) -> dict[str, list[dict[str, Any]]]:
        """The repeats of a scenario under each chosen value (`names`: value -> scenario name), in
        the order of `interleaved`; a baseline repeat that had a variant's beside it is marked
        `interleaved` (the report's ratio takes those). With one value: its repeats in a row."""
        runs: dict[str, list[dict[str, Any]]] = {value: [] for value in chosen}
        if len(chosen) == 1:
            runs[chosen[0]] = self.repeat(names[chosen[0]], lambda: run(chosen[0]), repeats=repeats)
            return runs
        paired = min(repeats, self.plan.variant_repeats)
        log(
            f"{names[chosen[0]]}: {variants.setting} {' vs '.join(chosen)}, "
            f"{paired} repeats of each interleaved"
            + (f", then {repeats - paired} more of {chosen[0]}" if repeats > paired else "")
        )
        for value in interleaved(chosen, repeats, paired):
            total = repeats if value == chosen[0] else paired
            (result,) = self.repeat(
                names[value],
                lambda v=value: run(v),
                repeats=1,
                numbered=(len(runs[value]) + 1, total),
            )
            result["interleaved"] = value != chosen[0] or len(runs[value]) < paired
            runs[value].append(result)
        return runs

    def skip(self, name: str, reason: str, **extra: Any) -> None:
        """A scenario that could not run here (no Rust or Go): a report line, not a failure."""
        log(f"{name}: skipped: {reason}")
        self.scenarios.append(
            {
                "name": name,
                "skipped": reason,
                "votes_per_s": None,
                "errors": 0,
                "reconciled": True,
                "repeats": 0,
                "runs": [],
            }
            | extra
        )

    def find(self, name: str) -> dict[str, Any] | None:
        return next((s for s in self.scenarios if s["name"] == name), None)

    def new_topic(self, what: str, dlq: bool = False) -> str:
        topic = self.names.topic_for(what)
        self.topics.append(topic)
        create_topics([topic])
        if dlq:
            self.topics.append(topic + ".dlq")
            create_topics([topic + ".dlq"], partitions=1)
        return topic

    def ingest(self, name: str, **how: Any) -> dict[str, Any]:
        """One repeat of load through a server, reconciled (bench.harness.measure.ingest)."""
        return measure.ingest(self, name, **how)

    @contextlib.contextmanager
    def serving(
        self,
        app: str,
        mode: str,
        import_path: str | None,
        settings: dict[str, Any] | None = None,
        beside: bool = False,
    ) -> Iterator[tuple[ServeInstance, str, float]]:
        """A `serve run` of ours, metered while it serves (bench.harness.serving.serving)."""
        with serving.serving(self, app, mode, import_path, settings, beside) as started:
            yield started

    # -- all --

    def steps(
        self, chosen: list[str], modes: list[str]
    ) -> list[tuple[str, set[str], Callable[[], None]]]:
        """(label, the groups it measures, what runs it), in the order of the run."""
        from bench.scenarios import e2e, peers, persist, raw_sinks, serve_ingest, system

        steps: list[tuple[str, set[str], Callable[[], None]]] = [
            ("raw", {"raw"}, lambda: raw_sinks.measure(self, chosen)),
            ("peer", {"peer"}, lambda: peers.plain_peers(self, chosen)),
            ("seed", {"seed"}, lambda: peers.seed_peers(self, chosen)),
        ]
        for mode in modes:
            last = mode == modes[-1]  # e2e_latency runs in the last mode only
            steps += [
                (
                    f"noop{suffix_of(mode)}",
                    {"noop"},
                    lambda m=mode: serve_ingest.serve_noop(self, chosen, m),
                ),
                (
                    f"ingest{suffix_of(mode)}",
                    {"ingest"},
                    lambda m=mode: serve_ingest.serve_ingest_only(self, chosen, m),
                ),
                (
                    f"serve{suffix_of(mode)}",
                    {"serve"},
                    lambda m=mode: serve_ingest.serve_whole(self, chosen, m),
                ),
                (
                    f"system{suffix_of(mode)}",
                    {"system", "e2e"},
                    lambda m=mode, e=last: system.measure(
                        self, chosen, m, e2e.measure if e else None
                    ),
                ),
            ]
        steps.append(("persist", {"persist"}, lambda: persist.measure(self)))
        return steps

    def run(self) -> int:
        chosen = selected(self.args)
        modes = serve_modes(self.args.serve_modes)
        own_ports(self.args)
        check_stack()
        self.expected_s = estimate_s(self.plan, chosen, modes)
        log(
            f"run {self.names.run_id}: {', '.join(chosen)}; Serve modes {', '.join(modes)}; "
            f"plan {self.plan}"
        )
        log(
            f"expected duration: ~{duration_text(self.expected_s)}"
            + (
                " (plus the seed peers' first build, if not built yet)"
                if "seed" in {group_of(n) for n in chosen}
                else ""
            )
        )
        load_before = os.getloadavg()
        groups = {group_of(name) for name in chosen}
        self.priority.align([os.getpid()])  # before any peer or `serve run`: they inherit it
        log(f"priority: every measured process at nice {self.priority.niceness}")
        try:
            for label, needs, step in self.steps(chosen, modes):
                if not groups & needs:
                    continue
                try:
                    step()
                except Exception as exc:  # noqa: BLE001 - one broken group must not hide the others
                    log(f"{label}: FAILED: {type(exc).__name__}: {exc}")
                    self.scenarios.append({"name": f"{label} (failed)"} | failed(exc))
        finally:
            delete_topics(self.topics)
            self.priority.restore()  # the stack's threads get their niceness back
        results.write(self, chosen, modes, load_before)
        unclean = [
            s["name"]
            for s in self.scenarios
            if not s.get("skipped") and (not s.get("reconciled") or s.get("errors"))
        ]
        log(
            f"done in {duration_text(time.monotonic() - self.started)} "
            f"(expected ~{duration_text(self.expected_s)}); wrote {self.args.out}/latest.*"
            + (f"; NOT reconciled or with errors: {', '.join(unclean)}" if unclean else "")
        )
        return 1 if unclean else 0
