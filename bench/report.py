"""Write the benchmark's results: latest.json, latest.md (table + answers) and latest.png (chart)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import write_json
from bench.profile import markdown as profile_markdown

CPU_PARTS = ["serve_proxy", "haproxy", "serve_ingress_replica", "serve_pool_replica", "pool_worker", "peer",
             "serve_other_replica", "kafka",
             "redis", "ferretdb", "serve_controller", "ray_system", "serve_other", "loadgen_and_bench",
             "other_processes"]
NOT_OURS = ("loadgen_and_bench", "other_processes")


def write_reports(data: dict[str, Any], out: Path, chart: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
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


def _spread(s: dict[str, Any]) -> str:
    low, high = s.get("votes_per_s_min"), s.get("votes_per_s_max")
    if low is None or s.get("repeats", 1) < 2:
        return "-"
    return f"{low:,.0f}-{high:,.0f} (±{s.get('spread_pct', 0) / 2:.0f}%)"


def table(scenarios: list[dict[str, Any]]) -> list[str]:
    lines = ["| scenario | votes/s (median) | spread (min-max) | p50 ms | p99 ms | errors | reconciled |",
             "| --- | ---: | ---: | ---: | ---: | ---: | :---: |"]
    for s in scenarios:
        lines.append(
            f"| {s['name']} | {_num(s.get('votes_per_s'))} | {_spread(s)} | {_num(s.get('p50_ms'), 1)} | "
            f"{_num(s.get('p99_ms'), 1)} | {s.get('errors', 0)} | {'yes' if s.get('reconciled') else 'NO'} |")
    return lines


def cpu_table(scenarios: list[dict[str, Any]]) -> list[str]:
    rows = [s for s in scenarios if s.get("cpu_us_per_vote")]
    if not rows:
        return []
    parts = [p for p in CPU_PARTS if any(p in s["cpu_us_per_vote"] for s in rows)]
    lines = ["| scenario | " + " | ".join(parts) + " | total |",
             "| --- | " + " | ".join("---:" for _ in parts) + " | ---: |"]
    for s in rows:
        cpu = s["cpu_us_per_vote"]
        total = sum(cpu.get(p, 0) for p in parts if p not in NOT_OURS)
        lines.append(f"| {s['name']} | " + " | ".join(_num(cpu.get(p), 0) for p in parts)
                     + f" | {_num(total, 0)} |")
    return lines


def rate(scenarios: list[dict[str, Any]], name: str) -> float | None:
    return next((s.get("votes_per_s") for s in scenarios if s["name"] == name), None)


def http_or_grpc(scenarios: list[dict[str, Any]]) -> list[str]:
    lines = []
    modes = sorted({s.get("mode") for s in scenarios if s.get("mode")}, key=lambda m: (m != "default", m))
    pairs = []
    for mode in modes:
        suffix = "" if mode == "default" else f"[{mode}]"
        label = "Serve" if mode == "default" else f"Serve ({mode} mode)"
        pairs += [(f"single votes through {label}", f"serve_http_single{suffix}", f"serve_grpc_single{suffix}"),
                  (f"batches of 1000 through {label}", f"serve_http_batch{suffix}", f"serve_grpc_batch{suffix}")]
    pairs.append(("single votes, plain servers without Ray", "plain_http_peer", "plain_grpc_peer"))
    for what, http, grpc in pairs:
        h, g = rate(scenarios, http), rate(scenarios, grpc)
        if h is None or g is None:
            continue
        if h == 0 or g == 0:
            lines.append(f"- {what}: HTTP {h:,.0f} vs gRPC {g:,.0f} votes/s.")
            continue
        faster, ratio = ("gRPC", g / h) if g > h else ("HTTP", h / g)
        verdict = "about the same" if ratio < 1.1 else f"{faster} is {ratio:.1f}x faster"
        lines.append(f"- {what}: HTTP {h:,.0f} vs gRPC {g:,.0f} votes/s: {verdict}.")
    single = [s["votes_per_s"] for s in scenarios
              if "_single" in s["name"] and s["name"].startswith("serve_") and s.get("votes_per_s")]
    batch = [s["votes_per_s"] for s in scenarios
             if "_batch" in s["name"] and s["name"].startswith("serve_") and s.get("votes_per_s")]
    if single and batch:
        lines.append(f"- The protocol matters less than batching: the best batch path carries "
                     f"{max(batch) / max(single):.0f}x the votes/s of the best single-vote path.")
    return lines


def bounds(scenarios: list[dict[str, Any]]) -> list[str]:
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


def markdown(data: dict[str, Any]) -> str:
    scenarios = data["scenarios"]
    machine = data["machine"]
    config = data["config"]
    plan = config["plan"]
    header = (f"{machine['when']} on {machine['cpus']} cores ({machine['cpu_model']}), Ray {machine['ray']}, "
              f"Python {machine['python']}. Load average before/after: {machine['loadavg_before'][0]} / "
              f"{machine['loadavg_after'][0]} (a shared machine: read the spread).")
    setup = (f"Each scenario: {plan['repeats']} repeat(s) of {plan['warmup_s']} s warm-up + "
             f"{plan['duration_s']} s measured ({plan['batch_duration_s']} s for batches); "
             f"{plan['concurrency']} requests in flight for single votes, {plan['batch_concurrency']} for "
             f"batches of 1000. Serve modes: {', '.join(config['serve_modes'])}. Medians, spread = min-max.")
    merged = config.get("merged_with")
    if merged:
        fresh = [s["name"] for s in scenarios if s["name"] not in merged.get("kept", [])]
        setup += (f" Merged report: {', '.join(fresh)} re-measured now (with the plan above); the other "
                  f"scenarios are from the run of {merged.get('when')} (plan {merged.get('config', {}).get('plan')}).")
    out = ["# votes benchmark: latest results", "", header, "", setup, "", *table(scenarios), ""]
    answer = http_or_grpc(scenarios)
    if answer:
        out += ["## HTTP or gRPC?", "", *answer, ""]
    targets = data.get("targets") or []
    if targets:
        out += ["## Performance targets", "", "| target | met | measured |", "| --- | :---: | --- |"]
        out += [f"| {t['target']} | {'yes' if t['met'] else '**no**'} | {t['detail']} |" for t in targets]
        out.append("")
    cpu = cpu_table(scenarios)
    if cpu:
        how = ("Measured from /proc over each repeat (warm-up included) for our processes only: the stack, "
               "the peer, our `serve run` and its Ray. `loadgen_and_bench` is this benchmark's own client, "
               "`other_processes` the rest of the machine (other sessions: noise), both left out of the "
               "total. On 2 cores, 2,000,000 µs/s ÷ (total + client) µs/vote ≈ the most votes/s this "
               "machine can do on that path.")
        out += ["## Where the CPU goes (µs of CPU per vote, by process)", "", how, "", *cpu, "",
                "What bounds each rate:", "", *bounds(scenarios), ""]
    profiles = profile_markdown(scenarios)
    if profiles:
        how = ("py-spy samples of the first repeat of each Serve scenario. A sample's layer is the "
               "innermost frame outside the event loop (`ours` = serve_app's own frames); own time is "
               "the leaf frame. Raw stacks of the run: `profiles/` (git-ignored; py-spy raw format, for flamegraph.pl).")
        out += ["## Profiles (py-spy)", "", how, "", *profiles]
    extra = [s for s in scenarios if s["name"].startswith(("persist", "e2e"))]
    if extra:
        out += ["## Notes", ""]
        for s in extra:
            if s["name"].startswith("persist"):
                startup = [r.get("startup_s") for r in s.get("runs", []) if r.get("startup_s") is not None]
                out.append(f"- {s['name']}: {s.get('records')} preloaded records drained by "
                           f"{s.get('replicas')} consumer(s) (`bench.pool_worker`, the VotePersister loop); "
                           f"time to first count {startup} s, not in the rate.")
            else:
                out.append(f"- e2e_latency: background {s.get('rate_votes_per_s')} votes/s of single HTTP "
                           f"votes; {s.get('note')}.")
        out.append("")
    out += [("Raw data: `latest.json` (every repeat, with its CPU breakdown and load average); chart: "
             "`latest.png`. Re-run: `make bench` (or `.venv/bin/python -m bench.run --help`)."), ""]
    return "\n".join(out)


def write_chart(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s for s in data["scenarios"] if s.get("votes_per_s")]
    if not scenarios:
        return
    colors = {"raw": "#7f7f7f", "plain": "#2ca02c", "serve": "#1f77b4", "persist": "#ff7f0e", "e2e": "#9467bd"}

    def color(name: str) -> str:
        for prefix, value in (("kafka", "raw"), ("ferretdb", "raw"), ("redis", "raw"), ("plain", "plain"),
                              ("serve", "serve"), ("persist", "persist"), ("e2e", "e2e")):
            if name.startswith(prefix):
                return colors[value]
        return "#333333"

    names = [s["name"] for s in scenarios]
    values = [s["votes_per_s"] for s in scenarios]
    low = [max(0.0, v - (s.get("votes_per_s_min") or v)) for v, s in zip(values, scenarios)]
    high = [max(0.0, (s.get("votes_per_s_max") or v) - v) for v, s in zip(values, scenarios)]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(names) + 1.5))
    ax.barh(names, values, xerr=[low, high], color=[color(n) for n in names], capsize=3)
    ax.set_xscale("log")
    ax.set_xlim(right=max((s.get("votes_per_s_max") or s["votes_per_s"]) for s in scenarios) * 8)
    ax.invert_yaxis()
    ax.set_xlabel("votes/s (median, bars: min-max over repeats; log scale)")
    machine = data["machine"]
    ax.set_title(f"votes: ingestion and sinks side by side ({machine['cpus']} cores, {machine['when'][:16]})")
    for y, (value, s) in enumerate(zip(values, scenarios)):
        label = f"{value:,.0f}"
        if s.get("p99_ms") is not None:
            label += f"  p99 {s['p99_ms']:,.0f} ms"
        right = max(value, s.get("votes_per_s_max") or value)
        ax.text(right * 1.12, y, label, va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
