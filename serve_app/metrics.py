"""Pipeline metrics, exported in Prometheus format through Ray's metrics agent.

Ray prefixes every name with `ray_` and counters get `_total`, so `votes_accepted` is scraped as
`ray_votes_accepted_total`. METRICS lists every metric this package defines; the dashboard
generator and its test check panel queries against it. Documented in the README ("Metrics").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ray.util.metrics import Counter, Gauge, Histogram

LATENCY_BOUNDARIES_S: list[float] = [
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
]
BATCH_BOUNDARIES: list[float] = [1, 5, 10, 25, 50, 100, 250, 500, 1000]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # counter | gauge | histogram
    description: str
    tags: tuple[str, ...] = ()

    @property
    def exported(self) -> str:
        """The name Prometheus sees."""
        suffix = "_total" if self.kind == "counter" else ""
        return f"ray_{self.name}{suffix}"


ACCEPTED = MetricSpec(
    "votes_accepted", "counter", "Votes accepted (Kafka acked), by path.", ("path",)
)
REJECTED = MetricSpec(
    "votes_rejected", "counter", "Write requests rejected, by path and reason.", ("path", "reason")
)
PRODUCE_LATENCY = MetricSpec(
    "votes_produce_latency_seconds",
    "histogram",
    "Time from produce to Kafka's ack of a request's records, by path.",
    ("path",),
)
PERSISTED = MetricSpec("votes_persisted", "counter", "Vote records stored in the vote log.")
COUNTED = MetricSpec("votes_counted", "counter", "Votes added to the Redis counters.")
DEAD_LETTERED = MetricSpec(
    "votes_dead_lettered",
    "counter",
    "Records the dead-letter topic acknowledged, each once per replica.",
)
STORE_FAILURES = MetricSpec(
    "votes_store_failures",
    "counter",
    "Failed attempts to persist a batch (retried), by step.",
    ("step",),
)
PERSIST_STALLS = MetricSpec(
    "votes_persist_stalls",
    "counter",
    "Steps that kept failing past the stall limit (the replica then fails "
    "its health check), by step.",
    ("step",),
)
BATCH_SIZE = MetricSpec("votes_persist_batch_size", "histogram", "Records per persisted batch.")
PERSIST_LATENCY = MetricSpec(
    "votes_persist_latency_seconds", "histogram", "Time to persist and commit one batch."
)
END_TO_END = MetricSpec(
    "votes_end_to_end_latency_seconds",
    "histogram",
    "From a vote's received_at to its batch being committed.",
)
CONSUMER_LAG = MetricSpec(
    "votes_consumer_lag",
    "gauge",
    "Records not yet consumed, per partition owned by a replica.",
    ("partition",),
)

METRICS: tuple[MetricSpec, ...] = (
    ACCEPTED,
    REJECTED,
    PRODUCE_LATENCY,
    PERSISTED,
    COUNTED,
    DEAD_LETTERED,
    STORE_FAILURES,
    PERSIST_STALLS,
    BATCH_SIZE,
    PERSIST_LATENCY,
    END_TO_END,
    CONSUMER_LAG,
)


def _counter(spec: MetricSpec) -> Counter:
    return Counter(spec.name, spec.description, tag_keys=spec.tags)


def _gauge(spec: MetricSpec) -> Gauge:
    return Gauge(spec.name, spec.description, tag_keys=spec.tags)


def _histogram(spec: MetricSpec, boundaries: list[float] = LATENCY_BOUNDARIES_S) -> Histogram:
    return Histogram(spec.name, spec.description, boundaries=boundaries, tag_keys=spec.tags)


class IngestMetrics:
    """The metrics an ingress replica records. Created in the replica, never at import."""

    @cached_property
    def accepted(self) -> Counter:
        return _counter(ACCEPTED)

    @cached_property
    def rejected(self) -> Counter:
        return _counter(REJECTED)

    @cached_property
    def produce_latency(self) -> Histogram:
        return _histogram(PRODUCE_LATENCY)


class PersistMetrics:
    """The metrics a persister replica records."""

    @cached_property
    def persisted(self) -> Counter:
        return _counter(PERSISTED)

    @cached_property
    def counted(self) -> Counter:
        return _counter(COUNTED)

    @cached_property
    def dead_lettered(self) -> Counter:
        return _counter(DEAD_LETTERED)

    @cached_property
    def store_failures(self) -> Counter:
        return _counter(STORE_FAILURES)

    @cached_property
    def persist_stalls(self) -> Counter:
        return _counter(PERSIST_STALLS)

    @cached_property
    def batch_size(self) -> Histogram:
        return _histogram(BATCH_SIZE, BATCH_BOUNDARIES)

    @cached_property
    def persist_latency(self) -> Histogram:
        return _histogram(PERSIST_LATENCY)

    @cached_property
    def end_to_end(self) -> Histogram:
        return _histogram(END_TO_END)

    @cached_property
    def consumer_lag(self) -> Gauge:
        return _gauge(CONSUMER_LAG)
