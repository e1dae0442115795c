"""Each metric a replica records is built as the kind its MetricSpec declares, with its tags."""

from __future__ import annotations

from functools import cached_property

from ray.util.metrics import Counter, Gauge, Histogram

from serve_app import metrics

KINDS: dict[str, type] = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}


def built_metrics() -> dict[str, Counter | Gauge | Histogram]:
    """Name -> metric, for every metric of IngestMetrics and PersistMetrics."""
    found: dict[str, Counter | Gauge | Histogram] = {}
    for holder in (metrics.IngestMetrics(), metrics.PersistMetrics()):
        for attribute, value in vars(type(holder)).items():
            if isinstance(value, cached_property):
                metric = getattr(holder, attribute)
                found[metric._name] = metric
    return found


def test_every_spec_is_built_as_its_kind_with_its_tags() -> None:
    built = built_metrics()
    assert sorted(built) == sorted(spec.name for spec in metrics.METRICS)
    for spec in metrics.METRICS:
        assert type(built[spec.name]) is KINDS[spec.kind], spec.name
        assert tuple(built[spec.name]._tag_keys) == spec.tags, spec.name


def test_batch_sizes_have_their_own_buckets_and_latencies_share_theirs() -> None:
    built = built_metrics()
    histograms = {name: m for name, m in built.items() if isinstance(m, Histogram)}
    assert histograms[metrics.BATCH_SIZE.name].boundaries == metrics.BATCH_BOUNDARIES
    for name, histogram in histograms.items():
        if name != metrics.BATCH_SIZE.name:
            assert histogram.boundaries == metrics.LATENCY_BOUNDARIES_S, name
