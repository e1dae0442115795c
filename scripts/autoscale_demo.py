"""Watch Ray scale the votes pipeline: replicas on Kafka lag, nodes on pending replicas.

    make autoscale-demo          (or: .venv/bin/python scripts/autoscale_demo.py [--records N])

Needs the local stack (make stack-up). Starts a local autoscaling Ray cluster of its own (the
real autoscaler, fake nodes on this machine; ports 48000/49000 for Serve, dashboard on
http://127.0.0.1:48265 when free), deploys config.yaml's application on it, sends a burst of
votes straight into Kafka and prints a row every ~2 s: time, produce rate, consumer lag,
replicas per deployment, nodes. Then it writes the timeline to docs/autoscale-timeline.md and
docs/images/autoscale-timeline.png, and removes everything it created (cluster processes by
PID, its topic, Redis database and MongoDB database). Takes 4-6 minutes on 2 cores.

The scenario and what it adapts for a one-machine cluster: devkit/autoscale/
(shared with the test that asserts it, tests/autoscaling/test_node_autoscaling.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

# Run as a script: the checkout's root is not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devkit.autoscale.fake_cluster import CLIENT_ENV
from devkit.autoscale.scenario import Scenario, stop_on_sigterm
from devkit.autoscale.spec import Result, Row, ScenarioSpec
from devkit.autoscale.timeline import COLUMNS, markdown_table, row_cells, text_table_line

ROOT = Path(__file__).resolve().parents[1]

EVENTS = {
    "lag_rose": "lag above the target of one replica",
    "pool_up": "the policy adds pool replicas (pending: no room on the head)",
    "node_added": "the autoscaler adds a worker node",
    "pool_running_up": "a second pool replica runs",
    "produced": "the whole burst is in Kafka",
    "drained": "lag back to 0",
    "scaled_in": "pool back to 1 replica, worker nodes removed",
}


def write_markdown(result: Result, path: Path, image: Path) -> None:
    spec, cluster = result.spec, result.spec["cluster"]
    policy = ", ".join(f"{k} {v}" for k, v in spec["policy_overrides"].items())
    recorded = (
        f"Recorded by `make autoscale-demo` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        "(scripts/autoscale_demo.py; docs/autoscaling.md explains what scales and why)."
    )
    setup = [
        (
            f"- Cluster: head {cluster['head_cpus']:g} CPUs, up to {cluster['max_workers']} worker "
            f"nodes of {cluster['worker_cpus']:g} CPU (Ray's fake multi-node provider, the real "
            f"autoscaler), idle_timeout_minutes {cluster['idle_timeout_minutes']:g}."
        ),
        (
            f"- App: config.yaml's, with each VotePersister replica asking for "
            f"{spec['pool_cpus']:g} CPU (so a second one needs a new node), max_replicas "
            f"{spec['pool_max_replicas']}, and the lag policy's waits shortened ({policy})."
        ),
        (
            f"- Burst: {spec['records']:,} vote records straight into the topic, at up to "
            f"{spec['produce_rate']:,.0f}/s."
        ),
    ]
    if result.redis_total is not None and result.mongo_count is not None:
        setup.append(
            f"- Exactly once: produced {result.produced:,}, counted "
            f"{result.redis_total:,} (Redis `votes:total`), stored "
            f"{result.mongo_count:,} (MongoDB)."
        )
    if result.failure:
        setup.append(f"- **Did not finish:** {result.failure}")
    events = [
        f"| {t:.0f} | {EVENTS.get(name, name)} |"
        for name, t in sorted(result.events.items(), key=lambda item: item[1])
    ]
    legend = (
        "t: seconds since the burst started. lag: records the consumer group is behind "
        "(Kafka: partition ends minus committed offsets). Replicas: running (and starting "
        "or pending), from serve.status(). Nodes and CPUs: ray.nodes(), "
        "ray.available_resources()."
    )
    lines = [
        "# Autoscaling timeline",
        "",
        recorded,
        "",
        *setup,
        "",
        "| t (s) | what happened |",
        "|---:|---|",
        *events,
        "",
        f"![timeline]({os.path.relpath(image, path.parent)})",
        "",
        legend,
        "",
        markdown_table(result.rows),
        "",
    ]
    path.write_text("\n".join(lines))


def write_plot(rows: list[Row], events: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [row.t for row in rows]
    fig, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(10, 6.5), gridspec_kw={"height_ratios": [3, 2]}
    )
    top.plot(t, [row.lag or 0 for row in rows], color="tab:red", label="consumer lag (records)")
    top.set_ylabel("lag (records)")
    rate = top.twinx()
    rate.plot(
        t, [row.rate for row in rows], color="tab:gray", alpha=0.6, label="produced (records/s)"
    )
    rate.set_ylabel("produced / s")
    handles = top.get_legend_handles_labels()[0] + rate.get_legend_handles_labels()[0]
    top.legend(handles, [str(h.get_label()) for h in handles], loc="upper right")
    top.set_title("votes: Ray scales the pool on Kafka lag, and nodes with the pool")

    bottom.step(
        t,
        [row.pool + row.pool_starting for row in rows],
        where="post",
        color="tab:blue",
        linestyle="--",
        label="VotePersister (incl. pending)",
    )
    bottom.step(
        t, [row.pool for row in rows], where="post", color="tab:blue", label="VotePersister running"
    )
    bottom.step(
        t,
        [row.ingress for row in rows],
        where="post",
        color="tab:green",
        label="VoteIngress running",
    )
    bottom.step(
        t,
        [row.nodes for row in rows],
        where="post",
        color="black",
        linewidth=4,
        alpha=0.35,
        label="nodes",
        zorder=1,
    )
    bottom.set_ylabel("replicas / nodes")
    bottom.set_xlabel("seconds since the burst started")
    highest = max(max(r.pool + r.pool_starting, r.nodes, r.ingress) for r in rows)
    bottom.set_yticks(range(highest + 1))
    bottom.set_ylim(0, highest + 2.2)  # room for the legend above the lines
    bottom.legend(loc="upper right", ncol=2, fontsize=8)
    for name in ("pool_up", "node_added", "drained", "scaled_in"):
        if name in events:
            for axis in (top, bottom):
                axis.axvline(events[name], color="tab:purple", alpha=0.3, linestyle=":")
            bottom.annotate(
                name,
                (events[name], 0.1),
                rotation=90,
                fontsize=8,
                color="tab:purple",
                xytext=(2, 0),
                textcoords="offset points",
            )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--records",
        type=int,
        default=ScenarioSpec.records,
        help="records in the burst (default %(default)s)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=ScenarioSpec.produce_rate,
        help="records/s at most (default %(default)s)",
    )
    parser.add_argument(
        "--redis-db",
        type=int,
        help="an empty Redis database for this run (default: the first empty one "
        "from 15 down); only the app's keys are deleted afterwards",
    )
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs/autoscale-timeline.md")
    parser.add_argument("--image", type=Path, default=ROOT / "docs/images/autoscale-timeline.png")
    parser.add_argument("--json", type=Path, help="also write the raw result here")
    args = parser.parse_args()
    os.environ.update(CLIENT_ENV)  # before Ray is imported (the scenario imports it late)
    stop_on_sigterm()  # a SIGTERM cleans up like Ctrl-C

    def log(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)

    header_every = 20
    shown = [0]

    def show(row: Row) -> None:
        if shown[0] % header_every == 0:
            print(text_table_line(COLUMNS), flush=True)
        shown[0] += 1
        print(text_table_line(row_cells(row)), flush=True)

    spec = ScenarioSpec(records=args.records, produce_rate=args.rate, redis_db=args.redis_db)
    try:
        result = Scenario(spec, on_row=show, log=log).run()
    except KeyboardInterrupt:
        print("interrupted: the cluster and this run's data were removed", file=sys.stderr)
        return 130
    if args.json:
        args.json.write_text(json.dumps(result.to_json(), indent=1))
    if result.rows:
        write_plot(result.rows, result.events, args.image)
        write_markdown(result, args.markdown, args.image)
        log(f"wrote {args.markdown.relative_to(ROOT)} and {args.image.relative_to(ROOT)}")
    if result.failure:
        log(f"FAILED: {result.failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
