"""latest.png: the paths side by side and where each one's CPU goes (matplotlib, optional)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.harness.report.sections import SERVE_PATHS, find, rate
from bench.harness.targets import mode_suffixes

Scenario = dict[str, Any]


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
