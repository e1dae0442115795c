"""deployments.deploy.status: `status` reports every part and whether all are up."""

from __future__ import annotations

from deployments.deploy.status import print_status
from devkit.k8s_validation import main_docs
from tests.unit.deployments.deploy.fakes import FakeCluster, app_status


def test_status_reports_every_part() -> None:
    cluster = FakeCluster(statuses=[app_status("RUNNING")])
    for doc in main_docs():
        cluster.apply(doc)
    lines: list[str] = []
    healthy = print_status(cluster, main_docs(), lines.append)
    text = "\n".join(lines)
    assert "application votes: RUNNING" in text and "deployment VoteIngress: HEALTHY" in text
    assert "Kafka/votes (votes): Ready" in text
    assert "StatefulSet/votes-redis (votes): 0/1 ready" in text
    assert "Gateway/votes (votes): not programmed yet; no address yet" in text
    assert healthy is False, "the fake StatefulSets report no ready replicas"
