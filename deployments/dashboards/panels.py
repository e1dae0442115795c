"""Panels and queries both dashboards build from: Redis stats, PromQL rates and quantiles."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions, VizLegendOptions
from grafana_foundation_sdk.builders.prometheus import Dataquery as PromQuery
from grafana_foundation_sdk.models.common import (
    BigValueGraphMode,
    LegendDisplayMode,
    LegendPlacement,
)

from deployments.dashboards.data_sources import PROMETHEUS, REDIS
from deployments.dashboards.redis_plugin import Redis


def redis_stat(
    title: str,
    description: str,
    target: Redis,
    calc: str,
    graph: BigValueGraphMode = BigValueGraphMode.NONE,
) -> stat.Panel:
    """A single-number panel over one Redis query, reduced with `calc`."""
    return (
        stat.Panel()
        .title(title)
        .datasource(REDIS)
        .description(description)
        .with_target(target.ref_id("A"))
        .graph_mode(graph)
        .reduce_options(ReduceDataOptions().calcs([calc]).values(False))
    )


def legend_bottom() -> VizLegendOptions:
    return (
        VizLegendOptions()
        .display_mode(LegendDisplayMode.LIST)
        .placement(LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def series(metric: str, selector: str = "") -> str:
    """A vector selector; PromQL rejects empty braces."""
    return f"{metric}{{{selector}}}" if selector else metric


def rate(metric: str, by: str = "", selector: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({series(metric, selector)}[$__rate_interval]))"


def events(metric: str, by: str = "") -> str:
    """How many times a rare event happened in each $__rate_interval, its first times included.

    Ray exports a counter only after its first increment, so a series is born with that value
    and rate()/increase() never see it: a replica's first rejections (often all of them) would
    show as 0. A series absent one window ago counts in full (`or x * 0`). Found by the soak:
    docs/decisions/0017-soak-and-panel-check.md.
    """
    grouping = f" by ({by})" if by else ""
    window = "$__rate_interval"
    return f"sum{grouping} ({metric} - ({metric} offset {window} or {metric} * 0))"


def quantile(q: float, histogram: str, selector: str = "", by: str = "") -> str:
    grouping = ", ".join(["le", *([by] if by else [])])
    return (
        f"histogram_quantile({q}, sum by ({grouping}) "
        f"(rate({series(histogram + '_bucket', selector)}[$__rate_interval])))"
    )


def prom(expr: str, legend: str, ref_id: str) -> PromQuery:
    return PromQuery().expr(expr).legend_format(legend).ref_id(ref_id).datasource(PROMETHEUS)


def latency_panel(title: str, histogram: str, selector: str = "", description: str = "") -> Any:
    return (
        timeseries.Panel()
        .title(title)
        .datasource(PROMETHEUS)
        .description(description)
        .with_target(prom(quantile(0.5, histogram, selector), "p50", "A"))
        .with_target(prom(quantile(0.99, histogram, selector), "p99", "B"))
        .unit("s")
        .min(0)
        .legend(legend_bottom())
    )
