"""The fault matrix: a careful client streams votes while something breaks; nothing is lost or doubled.

`make test` runs each scenario short; `make chaos` (VOTES_CHAOS_FULL=1) runs them longer and
repeatedly, and writes test-artifacts/chaos-report.md from the per-scenario results.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
import ray
from confluent_kafka import Producer

from tests.chaos.harness import FULL, assert_exact, run_scenario
from tests.conftest import Pipeline

pytestmark = pytest.mark.chaos

OUTAGE_S = 20.0 if FULL else 5.0
VOTES = 6000 if FULL else 2000


def serve_actors(prefix: str) -> list[Any]:
    """Handles of this session's Serve actors whose name starts with prefix."""
    names = [actor["name"] for actor in ray.util.list_named_actors(all_namespaces=True)
             if actor["namespace"] == "serve" and actor["name"].startswith(prefix)]
    return [ray.get_actor(name, namespace="serve") for name in names]


def replicas(deployment: str) -> list[Any]:
    return serve_actors(f"SERVE_REPLICA::votes#{deployment}#")


def pid_of(actor: Any) -> int:
    return int(ray.get(actor.__ray_call__.remote(lambda _self: os.getpid()), timeout=30))


def sigkill(actor: Any) -> None:
    os.kill(pid_of(actor), signal.SIGKILL)


def test_ray_kill_of_a_consumer_replica(pipeline: Pipeline, mongo_db: Any) -> None:
    def fault() -> None:
        ray.kill(replicas("VotePersister")[0], no_restart=True)

    assert_exact(run_scenario("persister-ray-kill", pipeline, mongo_db, fault, votes=VOTES))


def test_sigkill_of_consumer_replica_processes(pipeline: Pipeline, mongo_db: Any) -> None:
    def fault() -> None:
        for _ in range(3 if FULL else 1):
            sigkill(replicas("VotePersister")[-1])
            time.sleep(8)

    assert_exact(run_scenario("persister-sigkill", pipeline, mongo_db, fault, votes=VOTES))


def test_sigkill_of_the_ingress_replica_and_the_http_proxy(pipeline: Pipeline, mongo_db: Any) -> None:
    def fault() -> None:
        sigkill(replicas("VoteIngress")[0])
        time.sleep(3)
        (proxy,) = serve_actors("SERVE_PROXY_ACTOR")
        sigkill(proxy)

    assert_exact(run_scenario("ingress-and-proxy-sigkill", pipeline, mongo_db, fault,
                              votes=VOTES, deadline_s=180, settle_s=90))


@pytest.mark.parametrize("part", ["redis", "ferretdb", "kafka"])
def test_a_store_stopped_and_restarted(part: str, pipeline: Pipeline, mongo_db: Any, stack: Any) -> None:
    def fault() -> None:
        stack.stop(part)
        try:
            time.sleep(OUTAGE_S)
        finally:
            stack.start(part)

    report = run_scenario(f"{part}-outage", pipeline, mongo_db, fault, votes=VOTES,
                          deadline_s=120 + OUTAGE_S, settle_s=90)
    assert_exact(report)
    if part == "kafka":  # the client must have been told "try again", never a false 202
        assert any("503" in r or "UNAVAILABLE" in r for r in report.rejections), report


def test_poison_records_mid_stream(pipeline: Pipeline, mongo_db: Any) -> None:
    topic = pipeline.names.topic

    def fault() -> None:
        producer = Producer({"bootstrap.servers": "127.0.0.1:9092"})
        for index, value in enumerate([b"not json", b'{"vote_id": "no-fields"}', b"[]",
                                       b'{"vote_id":"x","name":"\\u0000"}', b"\xff" * 500_000]):
            producer.produce(topic, key=f"poison-{index}".encode(), value=value)
        assert producer.flush(10) == 0

    before = _dead_letters(pipeline)
    assert_exact(run_scenario("poison-records", pipeline, mongo_db, fault, votes=VOTES))
    assert _dead_letters(pipeline) - before == 5


def _dead_letters(pipeline: Pipeline) -> int:
    from tests.conftest import read_all

    try:
        return len(read_all(pipeline.names.dlq_topic, timeout_s=15))
    except KeyError:
        return 0
