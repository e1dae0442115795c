"""Write `make bench`'s results: latest.json, latest.md (tables + answers) and latest.png (chart).

The comparisons (HTTP or gRPC, the seed against the Python peers and Serve) carry a 95% bootstrap
interval over the repeats (bench/harness/stats.py); `latest.json` keeps them under "comparisons".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.harness.priority import merge_niceness, one_priority
from bench.harness.profile import markdown as profile_markdown
from bench.harness.report.comparisons import (
    comparisons,
    http_or_grpc,
    seed_section,
    variant_lines,
    variant_ratios,
)
from bench.harness.report.latest_chart import write_chart
from bench.harness.report.sections import (
    bounds,
    cpu_table,
    ingest_vs_whole,
    notes,
    system_table,
    table,
    targets_section,
)
from bench.harness.report.writer import write_reports as write_files

Scenario = dict[str, Any]


def write_reports(data: dict[str, Any], out: Path, chart: bool = True) -> None:
    """latest.json (with the comparisons and variant ratios), latest.md and latest.png."""
    data["comparisons"] = comparisons(data["scenarios"])
    data["variants"] = variant_ratios(data["scenarios"])
    write_files(out, "latest", data, markdown, write_chart if chart else None)


def header(data: dict[str, Any]) -> list[str]:
    scenarios = data["scenarios"]
    machine = data["machine"]
    config = data["config"]
    plan = config["plan"]
    first = (
        f"{machine['when']} on {machine['cpus']} cores ({machine['cpu_model']}), Ray "
        f"{machine['ray']}, "
        f"Python {machine['python']}. Load average before/after: {machine['loadavg_before'][0]} / "
        f"{machine['loadavg_after'][0]} (a shared machine: read the spread)."
    )
    setup = (
        f"Each scenario: {plan['warmup_s']} s warm-up + {plan['duration_s']} s measured "
        f"({plan['batch_duration_s']} s for batches), {plan['repeats']} repeats for the compared "
        "scenarios "
        f"(peers, seed, no-op, ingest only), {plan.get('context_repeats', plan['repeats'])} for "
        "the others; "
        f"{plan['concurrency']} requests in flight for single votes, {plan['batch_concurrency']} "
        "for "
        f"batches of 1000. system_*: {plan.get('system_warmup_s')} s warm-up + "
        f"{plan.get('system_duration_s')} s sustained ({config.get('system_load', 'lag-bounded')} "
        "load). "
        f"Serve modes: {', '.join(config['serve_modes'])}. Medians, spread = min-max."
    )
    if config.get("took_s") is not None:
        took, expected = config["took_s"] / 60, config.get("expected_s", 0) / 60
        setup += f" The run took {took:.0f} min (expected ~{expected:.0f})."
    merged = config.get("merged_with")
    if merged:
        fresh = [s["name"] for s in scenarios if s["name"] not in merged.get("kept", [])]
        setup += (
            f" Merged report: {', '.join(fresh)} re-measured now (with the plan above); the other "
            f"scenarios are from the run of {merged.get('when')} (plan "
            f"{merged.get('config', {}).get('plan')})."
        )
    return ["# votes benchmark: latest results", "", first, "", setup, "", like_for_like(data), ""]


def like_for_like(data: dict[str, Any]) -> str:
    """Which like-for-like points hold in this run, and which do not, with why (issue 26)."""
    scenarios = [s for s in data["scenarios"] if not s.get("skipped")]
    config = data["config"]
    held: list[str] = []
    not_held: list[str] = []
    loops = {s["name"]: s.get("event_loop") for s in scenarios if s["name"].startswith("plain_")}
    compared = {name: loop for name, loop in loops.items() if not name.endswith("_uvloop")}
    if compared and all(loop == "asyncio" for loop in compared.values()):
        held.append(
            "same event loop (asyncio) in the plain peers as in Serve's ingress replica "
            "(the `_uvloop` scenarios: the HTTP peer on uvloop, extra)"
        )
    elif compared:
        not_held.append(
            "event loop: "
            + ", ".join(f"{name} {loop or 'not recorded'}" for name, loop in compared.items())
        )
    seen = merge_niceness(s["niceness"] for s in scenarios if s.get("niceness"))
    niceness = one_priority(seen)
    if niceness is not None:
        held.append(
            f"one priority (nice {niceness}) for the stack, Serve and its Ray, the peers and "
            "the load generator"
        )
    else:
        parts = ", ".join(f"{part} {'/'.join(map(str, v))}" for part, v in seen.items())
        refused = "; ".join(config.get("niceness_refused") or [])
        why = f"; the bench could not change: {refused}" if refused else ""
        not_held.append(
            "priority: "
            + (f"the parts ran at different niceness ({parts}{why})" if parts else "not recorded")
        )
    if config["plan"].get("profiled"):
        held.append("profiled repeat not counted (py-spy in an extra, uncounted repeat)")
    if any(s.get("loadgen_us_per_request") is not None for s in scenarios):
        held.append("load generator CPU shown (loadgen µs/request beside each rate)")
    else:
        not_held.append("the load generator's CPU per request: not recorded")
    text = "Like for like: " + ("; ".join(held) if held else "none of the points below") + "."
    if not_held:
        text += " Not like for like: " + "; ".join(not_held) + "."
    return text


def markdown(data: dict[str, Any]) -> str:
    scenarios = data["scenarios"]
    found = data.get("comparisons") or comparisons(scenarios)
    out = [*header(data), *table(scenarios), ""]
    whole = ingest_vs_whole(scenarios)
    if whole:
        out += [
            "## Ingest only or the whole system",
            "",
            (
                "Ingest only: VoteIngress as `make run` builds it with the pool idle (like for "
                "like with the "
                "peers). Whole system: the full app with the pool running. The floor: "
                "`serve_noop`, Serve "
                "with our routes and no work."
            ),
            "",
            *whole,
        ]
    system = system_table(scenarios)
    if system:
        out += [
            "## The whole system, sustained",
            "",
            (
                "A lag-bounded load (bench/scenarios/system.py) offers the most the pool keeps up "
                "with: "
                "votes/s accepted "
                "and persisted (counted in Redis) in the window, the lag when the load stops, and "
                "how long the "
                "pool then takes to count every record."
            ),
            "",
            *system,
            "",
        ]
    answer = http_or_grpc(scenarios, found)
    if answer:
        out += [
            "## HTTP or gRPC?",
            "",
            (
                "Ratios of medians with a 95% bootstrap interval over the repeats; "
                '"no clear difference" when the interval contains 1.'
            ),
            "",
            *answer,
            "",
        ]
    seed = seed_section(scenarios, found)
    if seed:
        out += ["## The seed's peers", "", *seed]
    out += targets_section(data.get("targets") or [])
    cpu = cpu_table(scenarios)
    if cpu:
        how = (
            "Measured from /proc over each repeat (warm-up included) for our processes only: the "
            "stack, "
            "the peer, our `serve run` and its Ray. `loadgen_and_bench` is this benchmark's own "
            "client, "
            "`other_processes` the rest of the machine (other sessions: noise), both left out of "
            "the "
            "total. On 2 cores, 2,000,000 µs/s ÷ (total + client) µs/vote ≈ the most votes/s this "
            'machine can do on that path. For serve_noop_* a "vote" is one request.'
        )
        out += [
            "## Where the CPU goes (µs of CPU per vote, by process)",
            "",
            how,
            "",
            *cpu,
            "",
            "What bounds each rate:",
            "",
            *bounds(scenarios),
            "",
        ]
    profiles = profile_markdown(scenarios)
    if profiles:
        how = (
            "py-spy samples of each Serve scenario, profiled in an extra, uncounted repeat (run "
            "before the counted ones; its rate is `profiled_run` in latest.json, not in the "
            "medians). A sample's layer is the "
            "innermost frame outside the event loop (`ours` = serve_app's own frames); own time is "
            "the leaf frame. Raw stacks of the run: `profiles/` (git-ignored; py-spy raw format, "
            "for flamegraph.pl)."
        )
        out += ["## Profiles (py-spy)", "", how, "", *profiles]
    variants = variant_lines(scenarios)
    if variants:
        out += [
            "## What a setting costs: variants, interleaved",
            "",
            (
                "A scenario measured again under another value of an app setting in the same run, "
                "the "
                "repeats of the two interleaved (A/B, B/A, ...): the ratio of their medians "
                "(baseline / "
                "variant, > 1: the variant is slower) with a 95% bootstrap interval over the "
                "interleaved "
                "repeats. The targets judge the baseline only."
            ),
            "",
            *variants,
            "",
        ]
    out += notes(scenarios)
    out += [
        (
            "Raw data: `latest.json` (every repeat, with its CPU breakdown and load average; the "
            "comparisons "
            "with their intervals); chart: `latest.png`. Re-run: `make bench` "
            "(or `.venv/bin/python -m bench.run --help`)."
        ),
        "",
    ]
    return "\n".join(out)
