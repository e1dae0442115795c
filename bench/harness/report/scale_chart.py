"""scale.png: rate and efficiency against size, and where the cores go (matplotlib, optional)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.harness.report.scale import SATURATED


def write_chart(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [*(data.get("ingest") or []), *(data.get("persist") or [])]
    if not points:
        return
    fig, (rate_ax, eff_ax, busy_ax) = plt.subplots(1, 3, figsize=(16, 5))
    sizes: set[int] = set()
    for series in dict.fromkeys(p["series"] for p in points):
        mine = sorted((p for p in points if p["series"] == series), key=lambda p: p["size"])
        xs = [p["size"] for p in mine]
        sizes.update(xs)
        style = "--" if series == "persist" else "-"
        label = series if series != "persist" else "persist (x = consumers)"
        rated = [p for p in mine if p.get("votes_per_s")]
        if rated:
            rate_ax.errorbar(
                [p["size"] for p in rated],
                [p["votes_per_s"] for p in rated],
                yerr=[
                    [
                        p["votes_per_s"] - (p.get("votes_per_s_min") or p["votes_per_s"])
                        for p in rated
                    ],
                    [
                        (p.get("votes_per_s_max") or p["votes_per_s"]) - p["votes_per_s"]
                        for p in rated
                    ],
                ],
                marker="o",
                linestyle=style,
                capsize=3,
                label=label,
            )
        eff = [p for p in mine if p.get("efficiency") is not None]
        eff_ax.plot(
            [p["size"] for p in eff],
            [p["efficiency"] for p in eff],
            marker="o",
            linestyle=style,
            label=label,
        )
        busy = [p for p in mine if p.get("busy_share") is not None]
        busy_ax.plot(
            [p["size"] for p in busy],
            [100 * p["busy_share"] for p in busy],
            marker="o",
            linestyle=style,
            label=label,
        )
    ticks = sorted(sizes)
    rate_ax.set_yscale("log")
    rate_ax.set_title("throughput (median, bars: min-max)")
    rate_ax.set_ylabel("votes/s (log scale)")
    eff_ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
    top = max((p["efficiency"] for p in points if p.get("efficiency") is not None), default=1.0)
    eff_ax.set_ylim(0, max(1.1, top + 0.1))
    eff_ax.set_title("scaling efficiency: rate(N) / (N x rate(1))")
    busy_ax.axhline(100 * SATURATED, color="red", linestyle=":", linewidth=1, label="saturated")
    busy_ax.set_ylim(0, 110)
    busy_ax.set_title(f"cores busy (% of all {data['machine']['cpus']})")
    for ax in (rate_ax, eff_ax, busy_ax):
        ax.set_xticks(ticks)
        ax.set_xlabel("N: ingress replicas (solid) or consumers (dashed)")
        ax.grid(alpha=0.3)
    busy_ax.legend(fontsize=8)
    machine = data["machine"]
    fig.suptitle(f"votes: scale-out on {machine['cpus']} cores ({machine['when'][:16]})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
