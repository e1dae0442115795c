"""The pipeline metrics, scraped from Ray's Prometheus export like Prometheus does.

Ray's metrics agent serves every process's metrics on the node's metrics export port
(`ray.nodes()[i]["MetricsExportPort"]`), with or without the dashboard. Processes report to it
about every 10 s (`metrics_report_interval_ms`), so the test first waits for a baseline that has
stopped moving (earlier tests' votes included), then for the exact increase.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from deployments.dashboards import RAY_SERVE_METRICS
from devkit.waiting import wait_until
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.grpc_stubs import votes_pb2_grpc as pb_grpc
from serve_app.metrics import METRICS
from tests.conftest import Pipeline

pytestmark = pytest.mark.e2e

REPORT_WAIT_S = 60  # a few report intervals of Ray's metrics, on a busy 2-core machine
STABLE_FOR_S = 12  # longer than one report interval (10 s)

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        if match:
            labels = dict(LABEL.findall(match.group(2) or ""))
            samples.append((match.group(1), labels, float(match.group(3))))
    return samples


class Scraper:
    def __init__(self, url: str) -> None:
        self.url = url

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        response = httpx.get(self.url, timeout=10)
        response.raise_for_status()
        return parse(response.text)

    def total(self, name: str, **labels: str) -> float:
        """The sum over every series (replicas, workers) of `name` matching `labels`."""
        return sum(
            value
            for metric, have, value in self.samples()
            if metric == name and all(have.get(k) == v for k, v in labels.items())
        )

    def stable_totals(self, queries: dict[str, tuple[str, dict[str, str]]]) -> dict[str, float]:
        """Totals that did not change over STABLE_FOR_S: everything before is reported."""
        deadline = time.monotonic() + 4 * STABLE_FOR_S + REPORT_WAIT_S
        previous = {key: self.total(name, **labels) for key, (name, labels) in queries.items()}
        while time.monotonic() < deadline:
            time.sleep(STABLE_FOR_S)
            current = {key: self.total(name, **labels) for key, (name, labels) in queries.items()}
            if current == previous:
                return current
            previous = current
        pytest.fail(f"the metrics did not settle: {previous}")


@pytest.fixture(scope="module")
def scraper(pipeline: Pipeline) -> Scraper:
    import ray

    ports = {node["MetricsExportPort"] for node in ray.nodes() if node["Alive"]}
    assert len(ports) == 1, ports  # the session's one local node
    return Scraper(f"http://127.0.0.1:{ports.pop()}/metrics")


@pytest.fixture(scope="module")
def stub(pipeline: Pipeline) -> Iterator[Any]:
    channel = grpc.insecure_channel(pipeline.grpc_target)
    yield pb_grpc.VoteServiceStub(channel)
    channel.close()


def spec(name: str) -> Any:
    return next(m for m in METRICS if m.name == name)


def test_counters_match_the_votes_cast(pipeline: Pipeline, stub: Any, scraper: Scraper) -> None:
    accepted = spec("votes_accepted").exported
    rejected = spec("votes_rejected").exported
    produce_count = spec("votes_produce_latency_seconds").exported + "_count"
    persisted = spec("votes_persisted").exported
    counted = spec("votes_counted").exported
    end_to_end_count = spec("votes_end_to_end_latency_seconds").exported + "_count"
    queries = {
        "http": (accepted, {"path": "http"}),
        "grpc": (accepted, {"path": "grpc"}),
        "http_requests": (produce_count, {"path": "http"}),
        "grpc_requests": (produce_count, {"path": "grpc"}),
        "invalid_http": (rejected, {"path": "http", "reason": "invalid"}),
        "invalid_grpc": (rejected, {"path": "grpc", "reason": "invalid"}),
        "persisted": (persisted, {}),
        "counted": (counted, {}),
        "end_to_end": (end_to_end_count, {}),
    }
    before = scraper.stable_totals(queries)

    band = f"Metricas {uuid.uuid4().hex[:8]}"
    vote = {"name": band, "album": "Prometeo", "year": 2004, "rank": 7}
    for _ in range(3):
        assert pipeline.http.post("/votes", json=vote).status_code == 202
    assert pipeline.http.post("/votes/batch", json={"votes": [vote] * 10}).status_code == 202
    assert pipeline.http.post("/votes", json=vote | {"year": 1492}).status_code == 422
    stub.Cast(pb.Vote(name=band, album="Prometeo", year=2004, rank=7), timeout=15)
    stub.CastBatch(
        pb.VoteBatch(votes=[pb.Vote(name=band, album="Prometeo", year=2004, rank=7)] * 4),
        timeout=15,
    )
    with pytest.raises(grpc.RpcError):
        stub.Cast(pb.Vote(name="", album="x", year=2004, rank=7), timeout=15)
    wait_until(lambda: pipeline.results()["by_band"].get(band) == 18, 30, "the 18 votes counted")

    expected = {
        "http": 13,
        "grpc": 5,
        "http_requests": 4,
        "grpc_requests": 2,
        "invalid_http": 1,
        "invalid_grpc": 1,
    }

    def increases() -> dict[str, float] | None:
        now = {key: scraper.total(name, **labels) for key, (name, labels) in queries.items()}
        delta = {key: now[key] - before[key] for key in queries}
        done = all(delta[k] >= v for k, v in expected.items()) and all(
            delta[k] >= 18 for k in ("persisted", "counted", "end_to_end")
        )
        return delta if done else None

    delta = wait_until(increases, REPORT_WAIT_S, "the metrics to report the votes", every_s=1)
    # Counters of the ingress are exact: nothing else cast votes meanwhile.
    assert {k: delta[k] for k in expected} == expected
    # The pool's counters grew by at least these votes (a redelivered batch may add more).
    assert delta["persisted"] >= 18 and delta["counted"] >= 18 and delta["end_to_end"] >= 18


def test_lag_gauge_and_serve_metrics_are_exported(pipeline: Pipeline, scraper: Scraper) -> None:
    """The gauges the dashboards read exist under the names they use."""
    lag = spec("votes_consumer_lag").exported

    def present() -> set[str] | None:
        names = {name for name, _labels, _value in scraper.samples()}
        wanted = {lag, *RAY_SERVE_METRICS}
        return names if wanted <= names else None

    # Ray Serve's metrics that the Pipeline dashboard uses are really exported by this Ray.
    wait_until(present, REPORT_WAIT_S, f"the gauges {sorted({lag, *RAY_SERVE_METRICS})}", every_s=1)
    partitions = {labels.get("partition") for name, labels, _ in scraper.samples() if name == lag}
    assert partitions and None not in partitions
    healthy: dict[str | None, float] = {}
    for name, labels, value in scraper.samples():
        if name == "ray_serve_deployment_replica_healthy" and labels.get("application") == "votes":
            healthy[labels.get("deployment")] = healthy.get(labels.get("deployment"), 0) + value
    assert healthy.get("VoteIngress", 0) >= 1 and healthy.get("VotePersister", 0) >= 1, healthy
