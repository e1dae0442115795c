"""The "Pipeline" dashboard: ingestion, the persister pool and replicas, for operators."""

from __future__ import annotations

from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from deployments.dashboards.data_sources import PROMETHEUS
from deployments.dashboards.panels import (
    events,
    latency_panel,
    legend_bottom,
    prom,
    quantile,
    rate,
)
from serve_app.metrics import METRICS

APP = 'application="votes"'


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
