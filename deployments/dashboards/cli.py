"""Grafana dashboards as code, with the official grafana-foundation-sdk.

    .venv/bin/python -m deployments.dashboards           # (re)write the files below
    .venv/bin/python -m deployments.dashboards --check   # exit 1 naming every stale file
    .venv/bin/python -m deployments.dashboards --repo PATH   # another checkout (default: cwd)

Writes, under deployments/k8s/grafana/ (mounted by grafana/grafana.yaml through the ConfigMaps of
deployments/k8s/kustomization.yaml):

    dashboards/contest.json   "Contest": the counters in Redis (Grafana's redis-datasource plugin)
    dashboards/pipeline.json  "Pipeline": the pipeline metrics in Prometheus (Ray's metrics export)
    datasources.yaml          the two data sources, with the uids the dashboards refer to
    dashboards.yaml           the file provider that loads dashboards/*.json

`check_dashboard()` holds every panel query to the code: a Prometheus query may use only the
metric names `serve_app.metrics.METRICS` exports (and Ray Serve's own metrics in
RAY_SERVE_METRICS), a Redis query only the keys `serve_app.stores.redis_counts.ALL_KEYS` lists.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from deployments.dashboards.consistency import check_dashboard
from deployments.dashboards.provisioning import DASHBOARDS, render
from deployments.repo import Repo, RepoNotFound, add_repo_option


def stale_files(root: Path) -> list[Path]:
    """The generated files (relative to the repository `root`) missing or different there."""
    return [
        path
        for path, content in render().items()
        if not (root / path).is_file() or (root / path).read_text() != content
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.dashboards",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 naming every file that is stale or missing",
    )
    add_repo_option(parser)
    args = parser.parse_args(argv)
    try:
        repo = Repo.at(args.repo)
    except RepoNotFound as exc:
        print(f"dashboards: {exc}", file=sys.stderr)
        return 2
    problems = [
        p
        for name, build in DASHBOARDS.items()
        for p in check_dashboard(json.loads(JSONEncoder().encode(build().build())))
    ]
    if problems:
        print(
            "dashboards: queries inconsistent with the code:",
            *problems,
            sep="\n  ",
            file=sys.stderr,
        )
        return 1
    if args.check:
        stale = stale_files(repo.root)
        if stale:
            print(
                "dashboards: stale, run `make dashboards`:",
                *map(str, stale),
                sep="\n  ",
                file=sys.stderr,
            )
            return 1
        print(f"dashboards: {len(render())} files up to date")
        return 0
    for path, content in render().items():
        target = repo.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_text() != content:
            target.write_text(content)
            print(f"dashboards: wrote {path}")
    return 0
