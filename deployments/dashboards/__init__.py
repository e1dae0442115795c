"""Grafana dashboards as code, with the official grafana-foundation-sdk (`make dashboards`).

What the command writes and checks: cli.py's docstring (`python -m deployments.dashboards --help`).
The modules, each one responsibility:

    data_sources.py  Prometheus and Redis, and the metric names the panels may query
    redis_plugin.py  the redis-datasource plugin's query type and frame transformations
    panels.py        panel and PromQL builders both dashboards use
    contest.py       the "Contest" dashboard (Redis counters)
    pipeline.py      the "Pipeline" dashboard (Prometheus metrics)
    provisioning.py  every generated file: the dashboards' JSON, data sources, providers
    consistency.py   check_dashboard(): every query held to the code's metrics and keys
    cli.py           the command line

The names below are the package's public face, for callers outside it (the soak's panel check,
the e2e metrics test, scripts/docs_images.py).
"""

from deployments.dashboards.cli import main
from deployments.dashboards.consistency import check_dashboard, panels_of, promql_metric_names
from deployments.dashboards.data_sources import RAY_SERVE_METRICS
from deployments.dashboards.provisioning import DASHBOARD_DIR, render

__all__ = [
    "DASHBOARD_DIR",
    "RAY_SERVE_METRICS",
    "check_dashboard",
    "main",
    "panels_of",
    "promql_metric_names",
    "render",
]
