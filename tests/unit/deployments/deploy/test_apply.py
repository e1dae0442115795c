"""deployments.deploy.apply (and wait): apply in order, wait for RUNNING, stop on failure or timeout
with hints, and say which operators are missing before applying anything.
"""

from __future__ import annotations

import pytest

from deployments.deploy.apply import apply
from deployments.deploy.objects import DeployError, ordered
from devkit.k8s_validation import main_docs
from tests.unit.deployments.deploy.fakes import FakeClock, FakeCluster, app_status


def test_apply_applies_in_order_and_waits_for_running() -> None:
    cluster = FakeCluster(
        statuses=[
            {},
            app_status("DEPLOYING", "UPDATING"),
            app_status("DEPLOYING", "UPDATING"),
            app_status("RUNNING"),
        ]
    )
    lines: list[str] = []
    clock = FakeClock()
    code = apply(cluster, ordered(main_docs()), 600, lines.append, clock=clock, sleep=clock.sleep)
    assert code == 0, "\n".join(lines)
    kinds = [entry.split("/")[0] for entry in cluster.applied]
    assert kinds[0] == "Namespace" and kinds[-4:] == [
        "RayService",
        "Gateway",
        "HTTPRoute",
        "GRPCRoute",
    ]
    assert (
        kinds.index("Secret")
        < kinds.index("KafkaNodePool")
        < kinds.index("Kafka")
        < kinds.index("KafkaTopic")
    )
    assert cluster.applied.index("StatefulSet/votes-redis") < cluster.applied.index(
        "StatefulSet/votes-mongo"
    )
    assert cluster.applied.index("StatefulSet/votes-mongo") < cluster.applied.index(
        "Deployment/votes-grafana"
    )
    progress = [line for line in lines if line.strip().startswith("[")]
    assert any("app votes DEPLOYING (VoteIngress UPDATING" in line for line in progress)
    assert len(progress) == 3, "a line per change, not per poll"
    assert lines[-1] == "RayService votes: votes RUNNING"


def test_apply_times_out_with_hints() -> None:
    cluster = FakeCluster(statuses=[app_status("DEPLOYING", "UPDATING")])
    lines: list[str] = []
    clock = FakeClock()
    code = apply(cluster, main_docs(), 60, lines.append, clock=clock, sleep=clock.sleep)
    assert code == 1
    assert any(line.startswith("timed out after 60s") for line in lines)
    assert any("kubectl describe rayservice votes -n votes" in line for line in lines)
    assert clock.now <= 61


def test_apply_stops_on_deploy_failed() -> None:
    failed = app_status("DEPLOY_FAILED", "UNHEALTHY")
    failed["activeServiceStatus"]["applicationStatuses"]["votes"]["message"] = (
        "ImportError: no module"
    )
    lines: list[str] = []
    clock = FakeClock()
    assert (
        apply(
            FakeCluster(statuses=[failed]),
            main_docs(),
            600,
            lines.append,
            clock=clock,
            sleep=clock.sleep,
        )
        == 1
    )
    assert any("DEPLOY_FAILED: ImportError: no module" in line for line in lines)


def test_apply_without_operators_says_what_to_install() -> None:
    cluster = FakeCluster(missing={"RayService", "Kafka", "KafkaNodePool", "KafkaTopic"})
    with pytest.raises(DeployError) as info:
        apply(cluster, main_docs(), 60, lambda line: None)
    message = str(info.value)
    assert "RayService (ray.io/v1)" in message and "helm install kuberay-operator" in message
    assert "Kafka (kafka.strimzi.io/v1)" in message and "strimzi-kafka-operator" in message
    assert cluster.applied == [], "nothing applied when a kind is missing"
