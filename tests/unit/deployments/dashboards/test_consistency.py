"""deployments.dashboards.consistency: every query matches what the code really exports (metric
names) and writes (Redis keys), and the checker catches one that does not.
"""

from __future__ import annotations

import copy

import pytest

from deployments.dashboards.consistency import check_dashboard, panels_of, promql_metric_names
from deployments.dashboards.data_sources import RAY_SERVE_METRICS
from serve_app.metrics import METRICS
from serve_app.stores.redis_counts import ALL_KEYS
from tests.unit.deployments.dashboards.committed import ROOT, committed


@pytest.mark.parametrize("name", ["contest.json", "pipeline.json"])
def test_every_query_is_consistent_with_the_code(name: str) -> None:
    assert check_dashboard(committed(name)) == []


def test_pipeline_queries_use_only_exported_metrics() -> None:
    allowed = set(RAY_SERVE_METRICS)
    for spec in METRICS:
        allowed.add(spec.exported)
        if spec.kind == "histogram":
            allowed |= {spec.exported + suffix for suffix in ("_bucket", "_sum", "_count")}
    used: set[str] = set()
    for panel in panels_of(committed("pipeline.json")):
        for target in panel.get("targets", []):
            assert target["datasource"]["type"] == "prometheus"
            used |= promql_metric_names(target["expr"])
    assert used and used <= allowed, used - allowed
    # The dashboard covers ingestion by path, latency, lag, replicas, persistence and errors.
    for needed in (
        "ray_votes_accepted_total",
        "ray_votes_produce_latency_seconds_bucket",
        "ray_votes_consumer_lag",
        "ray_serve_deployment_replica_healthy",
        "ray_votes_persisted_total",
        "ray_votes_dead_lettered_total",
        "ray_votes_rejected_total",
        "ray_votes_store_failures_total",
        "ray_votes_end_to_end_latency_seconds_bucket",
    ):
        assert needed in used, needed


def test_contest_queries_use_only_keys_the_consumer_writes() -> None:
    targets = [t for p in panels_of(committed("contest.json")) for t in p.get("targets", [])]
    assert targets
    for target in targets:
        assert target["datasource"] == {"type": "redis-datasource", "uid": "redis"}
        assert target["keyName"] in ALL_KEYS
    assert {t["keyName"] for t in targets} >= {
        "votes:total",
        "votes:by_band",
        "votes:by_album",
        "votes:by_year",
        "votes:per_second",
    }


def test_the_checker_flags_an_unknown_metric_and_key() -> None:
    pipeline = copy.deepcopy(committed("pipeline.json"))
    panel = next(p for p in panels_of(pipeline) if p.get("targets"))
    panel["targets"][0]["expr"] = "sum(rate(ray_votes_acepted_total[5m]))"  # a typo
    problems = check_dashboard(pipeline)
    assert len(problems) == 1 and "ray_votes_acepted_total" in problems[0]

    contest = copy.deepcopy(committed("contest.json"))
    panel = next(p for p in panels_of(contest) if p.get("targets"))
    panel["targets"][0]["keyName"] = "votes:by_genre"
    problems = check_dashboard(contest)
    assert len(problems) == 1 and "votes:by_genre" in problems[0]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (path) (rate(ray_votes_accepted_total{path="http"}[$__rate_interval]))',
            {"ray_votes_accepted_total"},
        ),
        (
            (
                "histogram_quantile(0.99, sum by (le, path) (rate(a_bucket[5m])))"
                " / on (path) group_left b"
            ),
            {"a_bucket", "b"},
        ),
        (
            'max without (instance) (ray_votes_consumer_lag{partition=~"1|2"}) > bool 10',
            {"ray_votes_consumer_lag"},
        ),
    ],
)
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


def test_observability_doc_names_every_metric_and_key() -> None:
    doc = (ROOT / "docs/observability.md").read_text()
    missing = [m.exported for m in METRICS if f"`{m.exported}`" not in doc]
    missing += [k for k in ALL_KEYS if f"`{k}`" not in doc]
    missing += [n for n in RAY_SERVE_METRICS if f"`{n}`" not in doc]
    assert not missing, f"docs/observability.md does not document {missing}"
    for image in ("results-page.png", "dashboard-contest.png", "dashboard-pipeline.png"):
        assert f"(images/{image})" in doc and (ROOT / "docs/images" / image).is_file(), image
