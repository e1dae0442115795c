"""Write the benchmark's results: latest.json, latest.md (tables + answers) and latest.png (chart).

The comparisons (HTTP or gRPC, the seed against the Python peers and Serve) carry a 95% bootstrap
interval over the repeats (bench/stats.py); `latest.json` keeps them under "comparisons".
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench import stats
from bench.common import write_json
from bench.profile import markdown as profile_markdown
from bench.targets import mode_suffixes, run_rates

CPU_PARTS = [
    "serve_proxy",
    "haproxy",
    "serve_ingress_replica",
    "serve_pool_replica",
    "pool_worker",
    "peer",
    "peer_client",
    "serve_other_replica",
    "kafka",
    "redis",
    "ferretdb",
    "serve_controller",
    "ray_system",
    "serve_other",
    "loadgen_and_bench",
    "other_processes",
]
NOT_OURS = ("loadgen_and_bench", "other_processes")
# The four paths through Serve: (label, protocol, kind, scenario key).
SERVE_PATHS = [
    ("HTTP single", "http", "single", "http_single"),
    ("gRPC single", "grpc", "single", "grpc_single"),
    ("HTTP batch", "http", "batch", "http_batch"),
    ("gRPC batch", "grpc", "batch", "grpc_batch"),
]

Scenario = dict[str, Any]


def write_reports(data: dict[str, Any], out: Path, chart: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data["comparisons"] = comparisons(data["scenarios"])
    data["variants"] = variant_ratios(data["scenarios"])
    write_json(out / "latest.json", data)
    (out / "latest.md").write_text(markdown(data))
    if chart:
        try:
            write_chart(data, out / "latest.png")
        except Exception as exc:  # noqa: BLE001 - the chart is a convenience, the data is written
            print(f"[bench] chart not written: {exc}")


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _spread(s: Scenario) -> str:
    low, high = s.get("votes_per_s_min"), s.get("votes_per_s_max")
    if low is None or s.get("repeats", 1) < 2:
        return "-"
    return f"{low:,.0f}-{high:,.0f} (±{s.get('spread_pct', 0) / 2:.0f}%)"


def table(scenarios: list[Scenario]) -> list[str]:
    lines = [
        "| scenario | votes/s (median) | spread (min-max) | repeats | p50 ms | p99 ms | errors | reconciled |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for s in scenarios:
        if s.get("skipped"):
            lines.append(f"| {s['name']} | skipped: {s['skipped']} | | | | | | |")
            continue
        lines.append(
            f"| {s['name']} | {_num(s.get('votes_per_s'))} | {_spread(s)} | {s.get('repeats', '-')} | "
            f"{_num(s.get('p50_ms'), 1)} | {_num(s.get('p99_ms'), 1)} | {s.get('errors', 0)} | "
            f"{'yes' if s.get('reconciled') else 'NO'} |"
        )
    return lines


def cpu_table(scenarios: list[Scenario]) -> list[str]:
    rows = [s for s in scenarios if s.get("cpu_us_per_vote")]
    if not rows:
        return []
    parts = [p for p in CPU_PARTS if any(p in s["cpu_us_per_vote"] for s in rows)]
    lines = [
        "| scenario | " + " | ".join(parts) + " | total |",
        "| --- | " + " | ".join("---:" for _ in parts) + " | ---: |",
    ]
    for s in rows:
        cpu = s["cpu_us_per_vote"]
        total = sum(cpu.get(p, 0) for p in parts if p not in NOT_OURS)
        lines.append(
            f"| {s['name']} | "
            + " | ".join(_num(cpu.get(p), 0) for p in parts)
            + f" | {_num(total, 0)} |"
        )
    return lines


def find(scenarios: list[Scenario], name: str) -> Scenario | None:
    return next((s for s in scenarios if s["name"] == name), None)


def rate(scenarios: list[Scenario], name: str) -> float | None:
    return (find(scenarios, name) or {}).get("votes_per_s")


# ---- comparisons with their uncertainty ------------------------------------------------------

# (section, what, scenario a, label a, scenario b, label b); "{s}" is a Serve mode's suffix.
HTTP_OR_GRPC = [
    (
        "Serve's floor (no-op), one request each",
        "serve_noop_http{s}",
        "HTTP",
        "serve_noop_grpc{s}",
        "gRPC",
    ),
    (
        "single votes through Serve, ingest only",
        "serve_http_single_ingest{s}",
        "HTTP",
        "serve_grpc_single_ingest{s}",
        "gRPC",
    ),
    (
        "batches of 1000 through Serve, ingest only",
        "serve_http_batch_ingest{s}",
        "HTTP",
        "serve_grpc_batch_ingest{s}",
        "gRPC",
    ),
    (
        "single votes, plain Python servers without Ray",
        "plain_http_peer",
        "HTTP",
        "plain_grpc_peer",
        "gRPC",
    ),
    (
        "batches of 1000, plain Python servers",
        "plain_http_peer_batch",
        "HTTP",
        "plain_grpc_peer_batch",
        "gRPC",
    ),
    (
        "single votes, the seed (Rust HTTP, Go gRPC)",
        "seed_rust_http",
        "HTTP",
        "seed_go_grpc",
        "gRPC",
    ),
    ("batches of 1000, the seed", "seed_rust_http_batch", "HTTP", "seed_go_grpc_batch", "gRPC"),
    (
        "the seed's /grpc/insert (HTTP -> Go client -> Go gRPC server) or its gRPC direct",
        "seed_go_http_grpc",
        "/grpc/insert",
        "seed_go_grpc",
        "gRPC direct",
    ),
]
SEED_VS = [
    ("seed_rust_http", ["plain_http_peer", "serve_http_single_ingest{s}"]),
    ("seed_go_grpc", ["plain_grpc_peer", "serve_grpc_single_ingest{s}"]),
    ("seed_rust_http_batch", ["plain_http_peer_batch", "serve_http_batch_ingest{s}"]),
    ("seed_go_grpc_batch", ["plain_grpc_peer_batch", "serve_grpc_batch_ingest{s}"]),
    ("seed_go_http_grpc", ["plain_http_peer", "serve_http_single_ingest{s}"]),
]


def _compare(
    scenarios: list[Scenario], section: str, what: str, a: str, label_a: str, b: str, label_b: str
) -> dict[str, Any] | None:
    rates_a, rates_b = run_rates(find(scenarios, a)), run_rates(find(scenarios, b))
    if not rates_a or not rates_b:
        return None
    text, interval = stats.verdict(label_a, rates_a, label_b, rates_b)
    return {
        "section": section,
        "what": what,
        "a": a,
        "b": b,
        "label_a": label_a,
        "label_b": label_b,
        "rate_a": rate(scenarios, a),
        "rate_b": rate(scenarios, b),
        "verdict": text,
        "faster_over_slower": interval.as_dict(),
    }


def comparisons(scenarios: list[Scenario]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    suffixes = mode_suffixes(scenarios) or [""]
    for suffix in suffixes:
        for what, template_a, label_a, template_b, label_b in HTTP_OR_GRPC:
            a, b = template_a.format(s=suffix), template_b.format(s=suffix)
            if (a, b) in seen:
                continue
            seen.add((a, b))
            mode = f" ({suffix.strip('[]')} mode)" if suffix and "{s}" in template_a else ""
            if entry := _compare(scenarios, "http_or_grpc", what + mode, a, label_a, b, label_b):
                found.append(entry)
        for seed, others in SEED_VS:
            for template in others:
                other = template.format(s=suffix)
                if (seed, other) in seen:
                    continue
                seen.add((seed, other))
                if entry := _compare(
                    scenarios, "seed", f"{seed} or {other}", seed, seed, other, other
                ):
                    found.append(entry)
    return found


def comparison_lines(found: list[dict[str, Any]], section: str) -> list[str]:
    return [
        f"- {c['what']}: {c['label_a']} {_num(c['rate_a'])} vs {c['label_b']} {_num(c['rate_b'])} "
        f"{'requests' if c['a'].startswith('serve_noop') else 'votes'}/s: {c['verdict']}."
        for c in found
        if c["section"] == section
    ]


def http_or_grpc(scenarios: list[Scenario], found: list[dict[str, Any]]) -> list[str]:
    lines = comparison_lines(found, "http_or_grpc")
    single = [
        s["votes_per_s"]
        for s in scenarios
        if s.get("votes_per_s")
        and s.get("kind") == "single"
        and s["name"].startswith("serve_")
        and "_ingest" in s["name"]
    ]
    batch = [
        s["votes_per_s"]
        for s in scenarios
        if s.get("votes_per_s")
        and s.get("kind") == "batch"
        and s["name"].startswith("serve_")
        and "_ingest" in s["name"]
    ]
    if single and batch:
        lines.append(
            f"- The protocol matters less than batching: through Serve the best batch path carries "
            f"{max(batch) / max(single):.0f}x the votes/s of the best single-vote path."
        )
    return lines


# ---- ingest only and the whole system --------------------------------------------------------


def ingest_vs_whole(scenarios: list[Scenario]) -> list[str]:
    """Per Serve mode: the floor, ingest only (pool idle), the whole app, the sustained system."""
    lines: list[str] = []
    for suffix in mode_suffixes(scenarios):
        rows = []
        for label, protocol, kind, key in SERVE_PATHS:
            floor = rate(scenarios, f"serve_noop_{protocol}{suffix}") if kind == "single" else None
            ingest = rate(scenarios, f"serve_{key}_ingest{suffix}")
            whole = rate(scenarios, f"serve_{key}{suffix}")
            system = find(scenarios, f"system_{kind}{suffix}") or {}
            sustained = (
                system.get("votes_per_s")
                if (system.get("runs") or [{}])[0].get("protocol") == protocol
                else None
            )
            if all(v is None for v in (floor, ingest, whole, sustained)):
                continue
            share = f"{whole / ingest:.2f}" if whole and ingest else "-"
            rows.append(
                f"| {label} | {_num(floor)} | {_num(ingest)} | {_num(whole)} | {share} | {_num(sustained)} |"
            )
        if rows:
            lines += [
                f"Serve mode: {suffix.strip('[]') or 'default'}",
                "",
                (
                    "| path | Serve's floor (no-op), requests/s | ingest only (pool idle) | whole system, closed "
                    "loop, drained per repeat | whole / ingest only | whole system, sustained (system_*) |"
                ),
                "| --- | ---: | ---: | ---: | ---: | ---: |",
                *rows,
                "",
            ]
    return lines


def system_table(scenarios: list[Scenario]) -> list[str]:
    rows = [s for s in scenarios if s["name"].startswith("system_") and not s.get("skipped")]
    if not rows:
        return []
    lines = [
        (
            "| scenario | protocol | load | sustained votes/s | accepted/s | persisted/s | lag when the load "
            "stops (votes) | drain s (median, worst) | pool replicas at the end | reconciled |"
        ),
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for s in rows:
        runs = s.get("runs") or [{}]
        pools = sorted(
            {(r.get("replicas_at_end") or {}).get("serve_pool_replica", 0) for r in runs}
        )
        lines.append(
            f"| {s['name']} | {runs[0].get('protocol', '-')} | {runs[0].get('load', '-')} | "
            f"{_num(s.get('votes_per_s'))} | {_num(s.get('accepted_per_s'))} | "
            f"{_num(s.get('persisted_per_s'))} | {_num(s.get('lag_at_end'))} | "
            f"{_num(s.get('drain_s'), 1)}, {_num(s.get('drain_s_max'), 1)} | "
            f"{', '.join(map(str, pools))} | {'yes' if s.get('reconciled') else 'NO'} |"
        )
    return lines


def bounds(scenarios: list[Scenario]) -> list[str]:
    """Where the CPU goes per vote, for the scenarios that matter: what bounds each rate."""
    lines = []
    for s in scenarios:
        cpu = {k: v for k, v in (s.get("cpu_us_per_vote") or {}).items() if k not in NOT_OURS}
        if not cpu or not s.get("votes_per_s"):
            continue
        total = sum(cpu.values())
        top = sorted(cpu.items(), key=lambda item: -item[1])[:3]
        shares = ", ".join(f"{k} {v:,.0f} µs ({100 * v / total:.0f}%)" for k, v in top)
        lines.append(f"- {s['name']}: {total:,.0f} µs of server-side CPU per vote; top: {shares}.")
    return lines


def seed_section(scenarios: list[Scenario], found: list[dict[str, Any]]) -> list[str]:
    seeds = [s for s in scenarios if s["name"].startswith("seed_")]
    if not seeds:
        return []
    lines = [
        (
            "The seed's own servers, built from its files by `bench/seed_peers.py` and run in this same run: "
            "each against the Python peers and against votes on Ray Serve (ingest only, like for like). "
            "CPU per vote by process: the CPU table below (`peer`: the seed's server, `peer_client`: its Go "
            "HTTP client in front of the gRPC server on the /grpc/insert path)."
        ),
        "",
    ]
    lines += [f"- {s['name']}: skipped: {s['skipped']}" for s in seeds if s.get("skipped")]
    lines += comparison_lines(found, "seed")
    return [*lines, ""]


def targets_section(targets: list[dict[str, Any]]) -> list[str]:
    if not targets:
        return []
    out = [
        "## Performance targets",
        "",
        (
            "Ratio targets: the ratio of medians and its 95% bootstrap interval over "
            "the repeats; met on the point ratio."
        ),
        "",
        "| target | met | measured |",
        "| --- | :---: | --- |",
    ]
    out += [
        f"| {t['target']} | {'yes' if t['met'] else '**no**'} | {t['detail']} |" for t in targets
    ]
    return [*out, ""]


def header(data: dict[str, Any]) -> list[str]:
    scenarios = data["scenarios"]
    machine = data["machine"]
    config = data["config"]
    plan = config["plan"]
    first = (
        f"{machine['when']} on {machine['cpus']} cores ({machine['cpu_model']}), Ray {machine['ray']}, "
        f"Python {machine['python']}. Load average before/after: {machine['loadavg_before'][0]} / "
        f"{machine['loadavg_after'][0]} (a shared machine: read the spread)."
    )
    setup = (
        f"Each scenario: {plan['warmup_s']} s warm-up + {plan['duration_s']} s measured "
        f"({plan['batch_duration_s']} s for batches), {plan['repeats']} repeats for the compared scenarios "
        f"(peers, seed, no-op, ingest only), {plan.get('context_repeats', plan['repeats'])} for the others; "
        f"{plan['concurrency']} requests in flight for single votes, {plan['batch_concurrency']} for "
        f"batches of 1000. system_*: {plan.get('system_warmup_s')} s warm-up + "
        f"{plan.get('system_duration_s')} s sustained ({config.get('system_load', 'lag-bounded')} load). "
        f"Serve modes: {', '.join(config['serve_modes'])}. Medians, spread = min-max."
    )
    if config.get("took_s") is not None:
        setup += f" The run took {config['took_s'] / 60:.0f} min (expected ~{config.get('expected_s', 0) / 60:.0f})."
    merged = config.get("merged_with")
    if merged:
        fresh = [s["name"] for s in scenarios if s["name"] not in merged.get("kept", [])]
        setup += (
            f" Merged report: {', '.join(fresh)} re-measured now (with the plan above); the other "
            f"scenarios are from the run of {merged.get('when')} (plan {merged.get('config', {}).get('plan')})."
        )
    return ["# votes benchmark: latest results", "", first, "", setup, ""]


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
                "Ingest only: VoteIngress as `make run` builds it with the pool idle (like for like with the "
                "peers). Whole system: the full app with the pool running. The floor: `serve_noop`, Serve "
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
                "A lag-bounded load (bench/system.py) offers the most the pool keeps up with: votes/s accepted "
                "and persisted (counted in Redis) in the window, the lag when the load stops, and how long the "
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
            "Measured from /proc over each repeat (warm-up included) for our processes only: the stack, "
            "the peer, our `serve run` and its Ray. `loadgen_and_bench` is this benchmark's own client, "
            "`other_processes` the rest of the machine (other sessions: noise), both left out of the "
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
            "py-spy samples of the first repeat of each Serve scenario. A sample's layer is the "
            "innermost frame outside the event loop (`ours` = serve_app's own frames); own time is "
            "the leaf frame. Raw stacks of the run: `profiles/` (git-ignored; py-spy raw format, for flamegraph.pl)."
        )
        out += ["## Profiles (py-spy)", "", how, "", *profiles]
    variants = variant_lines(scenarios)
    if variants:
        out += [
            "## What a setting costs: variants, interleaved",
            "",
            (
                "A scenario measured again under another value of an app setting in the same run, the "
                "repeats of the two interleaved (A/B, B/A, ...): the ratio of their medians (baseline / "
                "variant, > 1: the variant is slower) with a 95% bootstrap interval over the interleaved "
                "repeats. The targets judge the baseline only."
            ),
            "",
            *variants,
            "",
        ]
    out += notes(scenarios)
    out += [
        (
            "Raw data: `latest.json` (every repeat, with its CPU breakdown and load average; the comparisons "
            "with their intervals); chart: `latest.png`. Re-run: `make bench` "
            "(or `.venv/bin/python -m bench.run --help`)."
        ),
        "",
    ]
    return "\n".join(out)


def notes(scenarios: list[Scenario]) -> list[str]:
    extra = [
        s for s in scenarios if s["name"].startswith(("persist", "e2e")) and not s.get("skipped")
    ]
    if not extra:
        return []
    out = ["## Notes", ""]
    for s in extra:
        if s["name"].startswith("persist"):
            startup = [
                r.get("startup_s") for r in s.get("runs", []) if r.get("startup_s") is not None
            ]
            out.append(
                f"- {s['name']}: {s.get('records')} preloaded records drained by "
                f"{s.get('replicas')} consumer(s) (`bench.pool_worker`, the VotePersister loop); "
                f"time to first count {startup} s, not in the rate."
            )
        else:
            out.append(
                f"- e2e_latency: background {s.get('rate_votes_per_s')} votes/s of single HTTP "
                f"votes; {s.get('note')}."
            )
    return [*out, ""]


def variant_ratios(scenarios: list[Scenario]) -> list[dict[str, Any]]:
    """Each variant (bench.run's Variants: --persist-write-concerns, --batch-transactions) against
    its baseline: the ratio of medians over the baseline's interleaved repeats and the variant's."""
    found = []
    for variant in scenarios:
        base = find(scenarios, variant.get("variant_of") or "")
        if not base:
            continue
        paired = [r for r in base.get("runs", []) if r.get("interleaved")]
        rates_base = run_rates({"runs": paired}) if paired else run_rates(base)
        rates_variant = run_rates(variant)
        if not rates_base or not rates_variant:
            continue
        found.append(
            {
                "what": variant.get("variant_what"),
                "setting": variant.get("variant_setting"),
                "flag": variant.get("variant_flag"),
                "baseline": base["name"],
                "variant": variant["name"],
                "baseline_value": variant.get("variant_baseline"),
                "variant_value": variant.get("variant"),
                "baseline_votes_per_s": statistics.median(rates_base),
                "variant_votes_per_s": statistics.median(rates_variant),
                "baseline_repeats": len(rates_base),
                "variant_repeats": len(rates_variant),
                "baseline_repeats_all": len(run_rates(base)),
                "baseline_over_variant": stats.ratio_ci(rates_base, rates_variant).as_dict(),
            }
        )
    return found


def variant_lines(scenarios: list[Scenario]) -> list[str]:
    lines = []
    for v in variant_ratios(scenarios):
        ratio = stats.Interval(**v["baseline_over_variant"])
        unclear = (
            "; no clear difference (the interval contains 1)"
            if ratio.n > 1 and ratio.contains(1)
            else ""
        )
        fewer = (
            f"; the baseline's other {v['baseline_repeats_all'] - v['baseline_repeats']} repeats, not "
            "interleaved, are left out of the ratio"
            if v["baseline_repeats_all"] > v["baseline_repeats"]
            else ""
        )
        lines.append(
            f"- {v['what']} (`{v['setting']}`), {v['baseline']} vs {v['variant']}: "
            f"{v['baseline_value']} {_num(v['baseline_votes_per_s'])} vs {v['variant_value']} "
            f"{_num(v['variant_votes_per_s'])} votes/s, {v['baseline_value']}/{v['variant_value']} = "
            f"{ratio.point:.2f} ({ratio.label}){unclear}. Interleaved repeats: "
            f"{v['baseline_repeats']} of each{fewer}."
        )
    return lines


# ---- the chart -------------------------------------------------------------------------------

COLORS = {
    "raw": "#7f7f7f",
    "plain": "#2ca02c",
    "seed": "#8c564b",
    "noop": "#c7c7c7",
    "ingest": "#1f77b4",
    "serve": "#aec7e8",
    "system": "#17becf",
    "persist": "#ff7f0e",
    "e2e": "#9467bd",
}


def color_of(name: str) -> str:
    base = name.split("[", 1)[0]
    if base.startswith(("kafka", "ferretdb", "redis")):
        return COLORS["raw"]
    if base.startswith("serve_noop"):
        return COLORS["noop"]
    if base.startswith("serve_") and base.endswith("_ingest"):
        return COLORS["ingest"]
    for prefix in ("plain", "seed", "serve", "system", "persist", "e2e"):
        if base.startswith(prefix):
            return COLORS[prefix]
    return "#333333"


def paths_panel(ax: Any, scenarios: list[Scenario]) -> bool:
    """Ingest only next to the whole system for each Serve path, the no-op floor as a tick."""
    rows: list[tuple[str, float | None, float | None, float | None, float | None]] = []
    for suffix in mode_suffixes(scenarios):
        for label, protocol, kind, key in SERVE_PATHS:
            system = find(scenarios, f"system_{kind}{suffix}") or {}
            same = (system.get("runs") or [{}])[0].get("protocol") == protocol
            row = (
                f"{label}{suffix}",
                rate(scenarios, f"serve_{key}_ingest{suffix}"),
                rate(scenarios, f"serve_{key}{suffix}"),
                system.get("votes_per_s") if same else None,
                rate(scenarios, f"serve_noop_{protocol}{suffix}") if kind == "single" else None,
            )
            if any(v for v in row[1:]):
                rows.append(row)
    if not rows:
        return False
    height = 0.27
    for offset, index, label, colour in (
        (-height, 1, "ingest only (pool idle)", COLORS["ingest"]),
        (0.0, 2, "whole system (closed loop)", COLORS["serve"]),
        (height, 3, "whole system, sustained (system_*)", COLORS["system"]),
    ):
        ys = [y + offset for y, row in enumerate(rows) if row[index]]
        ax.barh(
            ys, [row[index] for row in rows if row[index]], height=height, color=colour, label=label
        )
    floors = [(y, row[4]) for y, row in enumerate(rows) if row[4]]
    if floors:
        ax.scatter(
            [f for _, f in floors],
            [y for y, _ in floors],
            marker="|",
            s=400,
            color="black",
            zorder=3,
            label="Serve's floor (serve_noop, requests/s)",
        )
    ax.set_yticks(range(len(rows)), [row[0] for row in rows])
    ax.set_xscale("log")
    ax.set_xlim(right=max(v for row in rows for v in row[1:] if v) * 20)  # room for the legend
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(
        "Through Serve: ingest only, the whole system, and the framework's floor", fontsize=9
    )
    return True


def write_chart(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s for s in data["scenarios"] if s.get("votes_per_s")]
    if not scenarios:
        return
    fig, (top, bottom) = plt.subplots(
        2,
        1,
        figsize=(10, 0.42 * len(scenarios) + 6),
        gridspec_kw={"height_ratios": [1, max(1.5, len(scenarios) / 8)]},
    )
    if not paths_panel(top, scenarios):
        top.set_visible(False)
    names = [s["name"] for s in scenarios]
    values = [s["votes_per_s"] for s in scenarios]
    low = [
        max(0.0, v - (s.get("votes_per_s_min") or v))
        for v, s in zip(values, scenarios, strict=True)
    ]
    high = [
        max(0.0, (s.get("votes_per_s_max") or v) - v)
        for v, s in zip(values, scenarios, strict=True)
    ]
    bottom.barh(names, values, xerr=[low, high], color=[color_of(n) for n in names], capsize=3)
    bottom.set_xscale("log")
    bottom.set_xlim(
        right=max((s.get("votes_per_s_max") or s["votes_per_s"]) for s in scenarios) * 8
    )
    bottom.invert_yaxis()
    bottom.set_xlabel(
        "votes/s (median, bars: min-max over repeats; log scale; serve_noop: requests/s)"
    )
    machine = data["machine"]
    bottom.set_title(
        f"Every scenario ({machine['cpus']} cores, {machine['when'][:16]})", fontsize=9
    )
    for y, (value, s) in enumerate(zip(values, scenarios, strict=True)):
        label = f"{value:,.0f}"
        if s.get("p99_ms") is not None:
            label += f"  p99 {s['p99_ms']:,.0f} ms"
        right = max(value, s.get("votes_per_s_max") or value)
        bottom.text(right * 1.12, y, label, va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
