"""Grafana dashboards as code, with the official grafana-foundation-sdk.

    .venv/bin/python -m deployments.dashboards           # (re)write the files below
    .venv/bin/python -m deployments.dashboards --check   # exit 1 naming every stale file
    .venv/bin/python -m deployments.dashboards --repo PATH   # another checkout (default: the current directory)

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
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

from grafana_foundation_sdk.builders import barchart, stat, table, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions, VizLegendOptions
from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery as PromQuery
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BigValueGraphMode,
    LegendDisplayMode,
    LegendPlacement,
    VisibilityMode,
    VizOrientation,
)
from grafana_foundation_sdk.models.dashboard import DataSourceRef, DataTransformerConfig

from deployments.repo import Repo, RepoNotFound, add_repo_option
from serve_app.metrics import METRICS
from serve_app.stores import redis_counts as keys

# Relative to the repository root.
GRAFANA_DIR = Path("deployments/k8s/grafana")
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
# Where grafana.yaml mounts the ConfigMap votes-grafana-dashboards.
DASHBOARD_MOUNT = "/var/lib/grafana/dashboards/votes"

PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")
REDIS = DataSourceRef(type_val="redis-datasource", uid="redis")
PROMETHEUS_URL = "http://votes-prometheus:9090"  # deployments/k8s/prometheus/prometheus.yaml
REDIS_URL = "redis://votes-redis:6379"  # deployments/k8s/redis.yaml

# Ray Serve's own metrics the Pipeline dashboard uses, each verified in the ray 2.60 wheel.
RAY_SERVE_METRICS = {
    # Gauge; tags deployment, application (+ replica with high-cardinality tags): healthy replicas.
    "ray_serve_deployment_replica_healthy": "ray/serve/_private/deployment_state.py",
    # Gauge; tags deployment, application: the replica count the autoscaler aims for.
    "ray_serve_autoscaling_target_replicas": "ray/serve/_private/deployment_state.py",
}

# The Redis commands the panels use, as the plugin names them (its pkg/models/redis.go).
REDIS_COMMANDS = {"get", "hgetall", "hget", "hlen", "hkeys", "zrange"}

APP = 'application="votes"'


def exported_metric_names() -> set[str]:
    """Every name Prometheus sees for the metrics this package defines."""
    names: set[str] = set()
    for spec in METRICS:
        names.add(spec.exported)
        if spec.kind == "histogram":
            names |= {f"{spec.exported}_bucket", f"{spec.exported}_sum", f"{spec.exported}_count"}
    return names


def allowed_metric_names() -> set[str]:
    return exported_metric_names() | set(RAY_SERVE_METRICS)


# ---- the Redis plugin's query type (the SDK has no builder for third-party plugins) ------------


class RedisQuery(cogvariants.Dataquery):
    """A query of the redis-datasource plugin: one Redis command on one key."""

    def __init__(self, command: str, key: str, ref_id: str | None = None) -> None:
        self.command = command
        self.key = key
        self.ref_id = ref_id

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "datasource": REDIS.to_json(),
            "type": "command",
            "command": self.command,
            "keyName": self.key,
            "query": "",
        }
        if self.ref_id is not None:
            payload["refId"] = self.ref_id
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(data["command"], data["keyName"], data.get("refId"))


class Redis(cogbuilder.Builder[RedisQuery]):
    def __init__(self, command: str, key: str) -> None:
        self._internal = RedisQuery(command, key)

    def build(self) -> RedisQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self


# ---- transformations of the plugin's frames --------------------------------------------------
# HGETALL answers one frame with two string fields, "Field" and "Value"; GET one field "Value".


def transform(id_val: str, options: Mapping[str, Any]) -> DataTransformerConfig:
    return DataTransformerConfig(id_val=id_val, options=dict(options))


def to_numbers(*fields: str) -> DataTransformerConfig:
    return transform(
        "convertFieldType",
        {
            "fields": {},
            "conversions": [{"targetField": f, "destinationType": "number"} for f in fields],
        },
    )


def sort_by(field: str, desc: bool) -> DataTransformerConfig:
    return transform("sortBy", {"fields": {}, "sort": [{"field": field, "desc": desc}]})


def top(n: int) -> DataTransformerConfig:
    return transform("limit", {"limitField": n})


def rename(names: Mapping[str, str]) -> DataTransformerConfig:
    return transform(
        "organize", {"excludeByName": {}, "indexByName": {}, "renameByName": dict(names)}
    )


def counts_of(key: str, label: str, n: int | None) -> list[DataTransformerConfig]:
    """A counter hash as rows (label, votes), the largest first, at most n of them."""
    steps = [to_numbers("Value"), sort_by("Value", desc=True)]
    if n is not None:
        steps.append(top(n))
    return [*steps, rename({"Field": label, "Value": "votes"})]


def seconds_as_time() -> list[DataTransformerConfig]:
    """votes:per_second (epoch second -> count) as a time series."""
    return [
        to_numbers("Field", "Value"),
        transform(
            "calculateField",
            {
                "mode": "binary",
                "alias": "time",
                "replaceFields": False,
                "binary": {"left": "Field", "operator": "*", "right": "1000"},
            },
        ),
        transform(
            "convertFieldType",
            {
                "fields": {},
                "conversions": [{"targetField": "time", "destinationType": "time"}],
            },
        ),
        transform(
            "organize",
            {
                "excludeByName": {"Field": True},
                "indexByName": {"time": 0},
                "renameByName": {"Value": "votes/s"},
            },
        ),
        sort_by("time", desc=False),
    ]


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


# ---- the dashboards ------------------------------------------------------------------------


def contest() -> Dashboard:
    """What the audience watches: the counters the persister keeps in Redis."""
    return (
        Dashboard("Contest")
        .uid("votes-contest")
        .description("Votes for Guatemalan bands, live from the Redis counters (votes:*).")
        .tags(["votes", "generated"])
        .readonly()
        .refresh("5s")
        .time("now-1h", "now")
        .with_row(Row("Results"))
        .with_panel(
            redis_stat(
                "Total votes",
                "GET votes:total: every counted vote.",
                Redis("get", keys.TOTAL),
                "lastNotNull",
            )
            .span(6)
            .height(5)
        )
        .with_panel(
            redis_stat(
                "Bands",
                "HLEN votes:by_band: bands with at least one vote.",
                Redis("hlen", keys.BY_BAND),
                "lastNotNull",
            )
            .span(6)
            .height(5)
        )
        .with_panel(
            redis_stat(
                "Peak votes per second (last hour)",
                "The busiest second in votes:per_second (by time received).",
                Redis("hgetall", keys.PER_SECOND),
                "max",
                BigValueGraphMode.AREA,
            )
            .transformations(seconds_as_time())
            .span(12)
            .height(5)
        )
        .with_panel(
            timeseries.Panel()
            .title("Votes per second")
            .datasource(REDIS)
            .description(
                "HGETALL votes:per_second: votes by the second they were received "
                "(the last hour is kept)."
            )
            .with_target(Redis("hgetall", keys.PER_SECOND).ref_id("A"))
            .transformations(seconds_as_time())
            .unit("short")
            .min(0)
            .fill_opacity(20)
            .legend(legend_bottom())
            .span(24)
            .height(7)
        )
        .with_row(Row("Bands and albums"))
        .with_panel(
            barchart.Panel()
            .title("Votes per band (top 20)")
            .datasource(REDIS)
            .description("HGETALL votes:by_band, largest first.")
            .with_target(Redis("hgetall", keys.BY_BAND).ref_id("A"))
            .transformations(counts_of(keys.BY_BAND, "band", 20))
            .x_field("band")
            .orientation(VizOrientation.HORIZONTAL)
            .show_value(VisibilityMode.AUTO)
            .legend(legend_bottom().show_legend(False))
            .span(14)
            .height(14)
        )
        .with_panel(
            table.Panel()
            .title("Top albums")
            .datasource(REDIS)
            .description("HGETALL votes:by_album, largest first.")
            .with_target(Redis("hgetall", keys.BY_ALBUM).ref_id("A"))
            .transformations(counts_of(keys.BY_ALBUM, "album", 15))
            .span(10)
            .height(14)
        )
        .with_row(Row("Years and ranks"))
        .with_panel(
            barchart.Panel()
            .title("Votes by album year")
            .datasource(REDIS)
            .description("HGETALL votes:by_year, in year order.")
            .with_target(Redis("hgetall", keys.BY_YEAR).ref_id("A"))
            .transformations(
                [
                    to_numbers("Value"),
                    sort_by("Field", desc=False),
                    rename({"Field": "year", "Value": "votes"}),
                ]
            )
            .x_field("year")
            .orientation(VizOrientation.VERTICAL)
            .legend(legend_bottom().show_legend(False))
            .span(14)
            .height(8)
        )
        .with_panel(
            barchart.Panel()
            .title("Votes by rank")
            .datasource(REDIS)
            .description("HGETALL votes:by_rank: the rank voters gave the album.")
            .with_target(Redis("hgetall", keys.BY_RANK).ref_id("A"))
            .transformations(
                [
                    to_numbers("Field", "Value"),
                    sort_by("Field", desc=False),
                    rename({"Field": "rank", "Value": "votes"}),
                ]
            )
            .x_field("rank")
            .orientation(VizOrientation.VERTICAL)
            .legend(legend_bottom().show_legend(False))
            .span(10)
            .height(8)
        )
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


def pipeline() -> Dashboard:
    """What operators watch: ingestion, the pool, replicas; from Ray's Prometheus export."""
    accepted = next(m for m in METRICS if m.name == "votes_accepted").exported
    rejected = next(m for m in METRICS if m.name == "votes_rejected").exported
    produce = next(m for m in METRICS if m.name == "votes_produce_latency_seconds").exported
    persisted = next(m for m in METRICS if m.name == "votes_persisted").exported
    counted = next(m for m in METRICS if m.name == "votes_counted").exported
    dead = next(m for m in METRICS if m.name == "votes_dead_lettered").exported
    failures = next(m for m in METRICS if m.name == "votes_store_failures").exported
    batch = next(m for m in METRICS if m.name == "votes_persist_batch_size").exported
    persist_latency = next(m for m in METRICS if m.name == "votes_persist_latency_seconds").exported
    end_to_end = next(m for m in METRICS if m.name == "votes_end_to_end_latency_seconds").exported
    lag = next(m for m in METRICS if m.name == "votes_consumer_lag").exported
    return (
        Dashboard("Pipeline")
        .uid("votes-pipeline")
        .description(
            "The votes pipeline: ingestion (HTTP and gRPC), Kafka, the persister pool, "
            "replicas. Metrics from Ray's Prometheus export."
        )
        .tags(["votes", "generated", "ray"])
        .readonly()
        .refresh("10s")
        .time("now-30m", "now")
        .with_row(Row("Ingestion"))
        .with_panel(
            timeseries.Panel()
            .title("Votes accepted per second, by path")
            .datasource(PROMETHEUS)
            .description(f"rate({accepted}): votes Kafka acknowledged, HTTP and gRPC.")
            .with_target(prom(rate(accepted, "path"), "{{path}}", "A"))
            .unit("short")
            .min(0)
            .legend(legend_bottom())
            .span(12)
            .height(8)
        )
        .with_panel(
            timeseries.Panel()
            .title("Requests rejected, by path and reason")
            .datasource(PROMETHEUS)
            .description(
                f"{rejected} in each interval (at least four scrapes), the first "
                "rejections of a replica included: invalid votes, bodies too large, "
                "Kafka down or overloaded, unauthorized."
            )
            .with_target(prom(events(rejected, "path, reason"), "{{path}} {{reason}}", "A"))
            .unit("short")
            .min(0)
            .legend(legend_bottom())
            .span(12)
            .height(8)
        )
        .with_panel(
            latency_panel(
                "Kafka produce latency, HTTP",
                produce,
                'path="http"',
                "From produce to Kafka's ack, per request on the HTTP path.",
            )
            .span(12)
            .height(8)
        )
        .with_panel(
            latency_panel(
                "Kafka produce latency, gRPC",
                produce,
                'path="grpc"',
                "From produce to Kafka's ack, per request on the gRPC path.",
            )
            .span(12)
            .height(8)
        )
        .with_row(Row("Persister pool"))
        .with_panel(
            timeseries.Panel()
            .title("Votes persisted and counted per second")
            .datasource(PROMETHEUS)
            .description(
                f"rate({persisted}) (stored in the vote log) and rate({counted}) "
                "(added to the Redis counters)."
            )
            .with_target(prom(rate(persisted), "persisted", "A"))
            .with_target(prom(rate(counted), "counted", "B"))
            .unit("short")
            .min(0)
            .legend(legend_bottom())
            .span(12)
            .height(8)
        )
        .with_panel(
            timeseries.Panel()
            .title("Consumer lag per partition")
            .datasource(PROMETHEUS)
            .description(f"{lag}: records not yet consumed; the pool's autoscaling signal.")
            .with_target(prom(f"max by (partition) ({lag})", "partition {{partition}}", "A"))
            .with_target(prom(f"sum ({lag})", "total", "B"))
            .unit("short")
            .min(0)
            .legend(legend_bottom())
            .span(12)
            .height(8)
        )
        .with_panel(
            latency_panel(
                "End-to-end latency",
                end_to_end,
                "",
                "From a vote's received_at to its batch being committed.",
            )
            .span(8)
            .height(8)
        )
        .with_panel(
            latency_panel(
                "Persist latency per batch",
                persist_latency,
                "",
                "Store in MongoDB, count in Redis, commit to Kafka: one batch.",
            )
            .span(8)
            .height(8)
        )
        .with_panel(
            timeseries.Panel()
            .title("Batch size")
            .datasource(PROMETHEUS)
            .description("Records per persisted batch.")
            .with_target(prom(quantile(0.5, batch), "p50", "A"))
            .with_target(prom(quantile(0.99, batch), "p99", "B"))
            .unit("short")
            .min(0)
            .legend(legend_bottom())
            .span(8)
            .height(8)
        )
        .with_panel(
            timeseries.Panel()
            .title("Dead-lettered records and store failures")
            .datasource(PROMETHEUS)
            .description(
                f"In each interval (at least four scrapes), first ones included: {dead}, "
                f"undecodable records sent to the DLQ; {failures}, failed attempts to "
                "persist a batch (retried), by step."
            )
            .with_target(prom(events(dead), "dead-lettered", "A"))
            .with_target(prom(events(failures, "step"), "store failure: {{step}}", "B"))
            .unit("short")
            .min(0)
            .legend(legend_bottom())
            .span(12)
            .height(8)
        )
        .with_panel(
            timeseries.Panel()
            .title("Replicas per deployment")
            .datasource(PROMETHEUS)
            .description(
                "Healthy replicas (Ray Serve's serve_deployment_replica_healthy) "
                "and the autoscaler's target."
            )
            .with_target(
                prom(
                    f"sum by (deployment) (ray_serve_deployment_replica_healthy{{{APP}}})",
                    "{{deployment}} healthy",
                    "A",
                )
            )
            .with_target(
                prom(
                    f"max by (deployment) (ray_serve_autoscaling_target_replicas{{{APP}}})",
                    "{{deployment}} target",
                    "B",
                )
            )
            .unit("short")
            .min(0)
            .decimals(0)
            .legend(legend_bottom())
            .span(12)
            .height(8)
        )
    )


DASHBOARDS = {"contest.json": contest, "pipeline.json": pipeline}


# ---- provisioning ----------------------------------------------------------------------------

GENERATED = "# Generated by `make dashboards` (python -m deployments.dashboards): do not edit.\n"


def datasources_yaml() -> str:
    return (
        GENERATED
        + f"""\
# ConfigMap votes-grafana-datasources, mounted at /etc/grafana/provisioning/datasources.
# `Prometheus` is also the name the Ray dashboard's embedded panels expect (RAY_PROMETHEUS_NAME).
# The Redis data source needs the redis-datasource plugin (GF_PLUGINS_PREINSTALL) and the
# password in the Grafana container's environment as REDIS_PASSWORD (from votes-secrets).
apiVersion: 1
datasources:
  - name: Prometheus
    uid: {PROMETHEUS.uid}
    type: {PROMETHEUS.type_val}
    access: proxy
    url: {PROMETHEUS_URL}
    isDefault: true
    editable: false
  - name: Redis
    uid: {REDIS.uid}
    type: {REDIS.type_val}
    access: proxy
    url: {REDIS_URL}
    editable: false
    jsonData:
      client: standalone
      poolSize: 5
      timeout: 10
      pingInterval: 0
      pipelineWindow: 0
    secureJsonData:
      password: $REDIS_PASSWORD
"""
    )


def providers_yaml() -> str:
    return (
        GENERATED
        + f"""\
# ConfigMap votes-grafana-dashboard-providers, mounted at /etc/grafana/provisioning/dashboards.
# Loads every JSON file of the ConfigMap votes-grafana-dashboards (grafana/dashboards/*.json),
# mounted at the path below, into the folder "votes".
apiVersion: 1
providers:
  - name: votes
    folder: votes
    type: file
    disableDeletion: true
    allowUiUpdates: false
    updateIntervalSeconds: 30
    options:
      path: {DASHBOARD_MOUNT}
      foldersFromFilesStructure: false
"""
    )


def render() -> dict[Path, str]:
    """Every generated file (relative to the repository root) and its content."""
    encoder = JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False)
    files = {
        DASHBOARD_DIR / name: encoder.encode(build().build()) + "\n"
        for name, build in DASHBOARDS.items()
    }
    files[GRAFANA_DIR / "datasources.yaml"] = datasources_yaml()
    files[GRAFANA_DIR / "dashboards.yaml"] = providers_yaml()
    return files


# ---- consistency with the code --------------------------------------------------------------

_PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, labels and keywords left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group(0)
        following = text[match.end() :].lstrip()
        if following.startswith("(") or name.lower() in _PROMQL_WORDS or name.startswith("$"):
            continue
        if match.start() > 0 and text[match.start() - 1] == "$":  # $__rate_interval etc.
            continue
        names.add(name)
    return names


def panels_of(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panels_of(panel)  # collapsed rows keep their panels inside


def check_dashboard(
    dashboard: Mapping[str, Any],
    metrics: Iterable[str] | None = None,
    redis_keys: Iterable[str] | None = None,
) -> list[str]:
    """Every problem of the dashboard's queries, one line each; [] when all is consistent."""
    allowed = set(metrics) if metrics is not None else allowed_metric_names()
    known_keys = set(redis_keys) if redis_keys is not None else set(keys.ALL_KEYS)
    problems = []
    for panel in panels_of(dashboard):
        title = panel.get("title", "?")
        panel_source = (panel.get("datasource") or {}).get("type")
        for target in panel.get("targets", []):
            kind = (target.get("datasource") or {}).get("type") or panel_source
            where = f"{dashboard.get('title')} / {title} / {target.get('refId')}"
            if kind == "prometheus":
                expr = target.get("expr", "")
                names = promql_metric_names(expr)
                if not names:
                    problems.append(f"{where}: no metric in {expr!r}")
                for name in sorted(names - allowed):
                    problems.append(f"{where}: unknown metric {name!r} in {expr!r}")
            elif kind == "redis-datasource":
                if target.get("keyName") not in known_keys:
                    problems.append(f"{where}: unknown Redis key {target.get('keyName')!r}")
                if target.get("command") not in REDIS_COMMANDS:
                    problems.append(f"{where}: unsupported command {target.get('command')!r}")
            else:
                problems.append(f"{where}: unexpected data source {kind!r}")
    return problems


# ---- command line ----------------------------------------------------------------------------


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


if __name__ == "__main__":
    sys.exit(main())
