"""deployments.deploy.delete: reverse order, Kafka topics gone before their cluster, --keep-data."""

from __future__ import annotations

from deployments.deploy.delete import delete
from devkit.k8s_validation import main_docs
from tests.unit.deployments.deploy.fakes import FakeClock, FakeCluster


def test_delete_goes_backwards_and_lets_topics_finish_first() -> None:
    cluster = FakeCluster()
    for doc in main_docs():
        cluster.apply(doc)
    lines: list[str] = []
    clock = FakeClock()
    assert (
        delete(cluster, main_docs(), False, 60, lines.append, clock=clock, sleep=clock.sleep) == 0
    )
    kinds = [entry.split("/")[0] for entry in cluster.deleted]
    assert kinds[:4] == ["GRPCRoute", "HTTPRoute", "Gateway", "RayService"]
    assert kinds[-1] == "Namespace"
    assert kinds.index("KafkaTopic") < kinds.index("Kafka")
    assert cluster.topic_gets >= 2, "waited for the topics before deleting Kafka"
    kept = FakeCluster()
    delete(kept, main_docs(), True, 60, lines.append, clock=clock, sleep=clock.sleep)
    assert "Namespace/votes" not in kept.deleted
