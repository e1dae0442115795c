"""The dashboards' two data sources, and the names each one may be asked for."""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import DataSourceRef

from serve_app.metrics import METRICS

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
