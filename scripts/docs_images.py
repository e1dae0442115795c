"""The images of docs/observability.md and the README.

    .venv/bin/python scripts/docs_images.py layouts
        docs/images/dashboard-contest.png, docs/images/dashboard-pipeline.png: the panel grid of
        each generated dashboard, drawn from its JSON with matplotlib (a layout rendering, not a
        Grafana screenshot: there is no Grafana on a developer's machine).

    .venv/bin/python scripts/docs_images.py page --url http://127.0.0.1:8000/ [--seed]
        docs/images/results-page.png: the live page of a running app, in headless Chromium
        (scripts/install-chromium.sh). --seed first casts a few thousand demo votes to it: use it
        against a throwaway instance, never a real contest.

Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

IMAGES = ROOT / "docs/images"
DASHBOARDS = ROOT / "deployments/k8s/grafana/dashboards"

COLORS = {
    "row": "#d9dee7",
    "stat": "#c9e4ca",
    "timeseries": "#cfe0f5",
    "barchart": "#f6dcb6",
    "table": "#e8d5f0",
    "bargauge": "#f6dcb6",
}


def sources(panel: dict) -> list[str]:
    """What a panel reads: metric names of its PromQL, or the Redis command and key."""
    from deployments.dashboards.consistency import promql_metric_names

    lines = []
    for query in panel.get("targets", []):
        if "expr" in query:
            line = ", ".join(sorted(promql_metric_names(query["expr"])))
        else:
            line = f"{query['command'].upper()} {query['keyName']}"
        if line not in lines:
            lines.append(line)
    return lines


def sketch(axes, panel: dict, grid: dict) -> None:
    """A schematic of the visualisation, so the layout reads at a glance."""
    from matplotlib.patches import Rectangle

    x0, y0 = grid["x"] + 0.6, grid["y"] + 1.6 + 0.25 * panel["title"].count(" ") // 6
    width, height = grid["w"] - 1.2, grid["h"] - 3.4
    if height <= 0.5:
        return
    kind = panel["type"]
    color = "#5b6575"
    if kind == "timeseries":
        xs = [x0 + width * i / 40 for i in range(41)]
        series = ((0, 0.9), (1.7, 0.5))[: max(1, len(panel.get("targets", [])))]
        for phase, alpha in series:
            ys = [
                y0
                + height * (0.55 - 0.3 * math.sin(i / 5 + phase) * (0.6 + 0.4 * math.cos(i / 11)))
                for i in range(41)
            ]
            axes.plot(xs, ys, color=color, alpha=alpha, linewidth=1)
    elif kind == "barchart":
        values = [1, 0.8, 0.62, 0.5, 0.41, 0.33, 0.27, 0.2]
        if panel.get("options", {}).get("orientation") == "horizontal":
            step = height / len(values)
            for i, value in enumerate(values):
                axes.add_patch(
                    Rectangle(
                        (x0 + width * 0.25, y0 + i * step + step * 0.15),
                        width * 0.7 * value,
                        step * 0.7,
                        color=color,
                        alpha=0.6,
                    )
                )
        else:
            step = width / len(values)
            for i, value in enumerate(reversed(values)):
                h = height * (0.3 + 0.7 * value)
                axes.add_patch(
                    Rectangle(
                        (x0 + i * step + step * 0.15, y0 + height - h),
                        step * 0.7,
                        h,
                        color=color,
                        alpha=0.6,
                    )
                )
    elif kind == "stat":
        axes.text(x0, y0 + height * 0.6, "1 234", fontsize=18, color=color, va="center")
    elif kind == "table":
        rows = max(2, int(height / 0.9))
        for i in range(rows):
            y = y0 + height * i / rows
            axes.plot([x0, x0 + width], [y, y], color=color, alpha=0.4, linewidth=0.8)


def draw_layout(source: Path, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    dashboard = json.loads(source.read_text())
    panels = dashboard["panels"]
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    figure, axes = plt.subplots(figsize=(12, 0.26 * height + 1.2), dpi=110)
    axes.set_xlim(0, 24)
    axes.set_ylim(height, 0)
    axes.axis("off")
    for panel in panels:
        grid = panel["gridPos"]
        kind = panel["type"]
        box = FancyBboxPatch(
            (grid["x"] + 0.1, grid["y"] + 0.1),
            grid["w"] - 0.2,
            grid["h"] - 0.2,
            boxstyle="round,pad=0,rounding_size=0.2",
            linewidth=1,
            edgecolor="#5b6575",
            facecolor=COLORS.get(kind, "#eeeeee"),
        )
        axes.add_patch(box)
        if kind == "row":
            axes.text(
                grid["x"] + 0.4,
                grid["y"] + 0.55,
                panel["title"],
                va="center",
                fontsize=10,
                fontweight="bold",
            )
            continue
        title = "\n".join(textwrap.wrap(panel["title"], max(12, int(grid["w"] * 4))))
        axes.text(grid["x"] + 0.4, grid["y"] + 0.5, title, va="top", fontsize=9, fontweight="bold")
        sketch(axes, panel, grid)
        axes.text(
            grid["x"] + 0.4,
            grid["y"] + grid["h"] - 0.4,
            "\n".join([kind, *sources(panel)]),
            va="bottom",
            fontsize=6.5,
            color="#333333",
            family="monospace",
        )
    axes.set_title(
        f'Grafana dashboard "{dashboard["title"]}": layout rendering of '
        f"{source.relative_to(ROOT)} (panel grid from the JSON, not a screenshot)",
        fontsize=10,
        loc="left",
    )
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target)
    plt.close(figure)
    print(f"docs_images: wrote {target.relative_to(ROOT)}")


# Demo data for the page screenshot: bands of the Guatemalan scene, made-up albums.
BANDS = [
    "Bohemia Suburbana",
    "Alux Nahual",
    "Viernes Verde",
    "Malacates Trébol Shop",
    "Tijuana Love",
    "Easy Easy",
    "Legión",
    "Radio Viejo",
    "Extinción",
    "La Tona",
    "El Clubo",
    "Los Tiros",
    "Ricardo Andrade y los Últimos Adictos",
    "Influenza",
    "Razones de Cambio",
    "Medusa",
    "Señor Mostaza",
    "Sofía Cuarenta",
    "La Gran Manzana",
    "Gaby Moreno y banda",
    "Santa Sangre",
    "Cuarto Cerrado",
    "Ultratumba",
    "Kahlúa y Leche",
]
ALBUMS = [
    "En vivo desde la zona 1",
    "Primer disco",
    "Acústico",
    "Lo mejor de",
    "Demo 1998",
    "Tierra de volcanes",
    "Noches de Xela",
    "Canciones para el bus",
]


def seed(url: str, total: int = 2400) -> None:
    import httpx

    rng = random.Random(5)
    weights = [1 / (i + 1) ** 0.9 for i in range(len(BANDS))]
    votes = []
    for _ in range(total):
        band = rng.choices(BANDS, weights)[0]
        votes.append(
            {
                "name": band,
                "album": rng.choice(ALBUMS),
                "year": rng.randint(1985, 2024),
                "rank": rng.randint(1, 10),
            }
        )
    with httpx.Client(base_url=url, timeout=30) as client:
        for start in range(0, total, 100):  # spread over a few seconds: the rate shows
            response = client.post("votes/batch", json={"votes": votes[start : start + 100]})
            response.raise_for_status()
            time.sleep(0.25)
    print(f"docs_images: cast {total} demo votes")


def page(url: str, target: Path) -> None:
    from devkit.browser import find_chromium, launch

    chromium = find_chromium()
    if chromium is None:
        sys.exit("docs_images: chromium not found; run scripts/install-chromium.sh")
    with launch(chromium, width=1100, height=900) as browser:
        browser.navigate(url)
        browser.wait_for(
            "document.body.dataset.mode === 'live' && Number(document.body.dataset.updates) >= 3",
            30,
            "live updates",
        )
        time.sleep(3)  # let the highlight of new rows fade
        browser.screenshot(target)
        if browser.errors:
            sys.exit(f"docs_images: the page reported errors: {browser.errors}")
    print(f"docs_images: wrote {target.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("layouts")
    page_args = sub.add_parser("page")
    page_args.add_argument("--url", default="http://127.0.0.1:8000/")
    page_args.add_argument("--seed", action="store_true")
    args = parser.parse_args()
    if args.what == "layouts":
        for name in ("contest", "pipeline"):
            draw_layout(DASHBOARDS / f"{name}.json", IMAGES / f"dashboard-{name}.png")
    else:
        url = args.url if args.url.endswith("/") else args.url + "/"
        if args.seed:
            seed(url)
        page(url, IMAGES / "results-page.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
