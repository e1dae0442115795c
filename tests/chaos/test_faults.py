"""The fault matrix: a careful client streams votes while something breaks; nothing is lost or
doubled.

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

from devkit.kafka import LagReader, read_all
from tests.chaos.harness import FULL, ScenarioReport, assert_exact, run_scenario
from tests.conftest import Pipeline

pytestmark = pytest.mark.chaos

OUTAGE_S = 20.0 if FULL else 5.0
VOTES = 6000 if FULL else 2000


def serve_actor_names(prefix: str) -> list[tuple[str, Any]]:
    """(name, handle) of this session's Serve actors whose name starts with prefix."""
    names = [
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["namespace"] == "serve" and actor["name"].startswith(prefix)
    ]
    return [(name, ray.get_actor(name, namespace="serve")) for name in names]


def serve_actors(prefix: str) -> list[Any]:
    return [actor for _name, actor in serve_actor_names(prefix)]


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is pid (from /proc: field 4 of stat, after the parenthesised name)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                stat = file.read()
        except OSError:  # gone meanwhile
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry))
    return children


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


def test_sigkill_of_the_ingress_replica_and_the_http_proxy(
    pipeline: Pipeline, mongo_db: Any
) -> None:
    def fault() -> None:
        sigkill(replicas("VoteIngress")[0])
        time.sleep(3)
        # The front proxy: with serve_env's HAProxy mode, Serve's HAProxy manager and the haproxy
        # process it runs (which would outlive its manager); otherwise Serve's Python proxy. The
        # "fallback" proxy HAProxy mode keeps next to it is left alone.
        (proxy,) = [
            actor
            for name, actor in serve_actor_names("SERVE_PROXY_ACTOR")
            if "fallback" not in name
        ]
        pid = pid_of(proxy)
        children = children_of(pid)
        os.kill(pid, signal.SIGKILL)
        for child in children:
            os.kill(child, signal.SIGKILL)

    assert_exact(
        run_scenario(
            "ingress-and-proxy-sigkill",
            pipeline,
            mongo_db,
            fault,
            votes=VOTES,
            deadline_s=180,
            settle_s=90,
        )
    )


# Kafka's scenario runs in `make chaos` only, to keep `make test` short: one earlier clean-clone
# run saw the ingress refuse votes for ~2 minutes after the broker came back (the broker itself was
# serving again within 3 s; the controller-registration error it logged is a benign retry). It
# has not recurred since; tests/e2e/test_kafka_outage.py covers the outage in make test.
STORE_PARTS = ["redis", "ferretdb", "kafka"] if FULL else ["redis", "ferretdb"]


@pytest.mark.parametrize("part", STORE_PARTS)
def test_a_store_stopped_and_restarted(
    part: str, pipeline: Pipeline, mongo_db: Any, stack: Any
) -> None:
    def fault() -> None:
        stack.stop(part)
        try:
            time.sleep(OUTAGE_S)
        finally:
            stack.start(part)

    report = run_scenario(
        f"{part}-outage",
        pipeline,
        mongo_db,
        fault,
        votes=VOTES,
        deadline_s=120 + OUTAGE_S,
        settle_s=90,
    )
    assert_exact(report)
    if part == "kafka":  # the client must have been told "try again", never a false 202
        assert any("503" in r or "UNAVAILABLE" in r for r in report.rejections), report


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_a_slow_store(pipeline: Pipeline, mongo_db: Any, redis_proxy: Any) -> None:
    pids = [pid_of(actor) for actor in replicas("VotePersister")]
    before = {pid: rss_mb(pid) for pid in pids}
    seen: dict[str, float] = {"lag": 0, "growth_mb": 0}

    def fault() -> None:
        redis_proxy.delay_s = 0.3  # per forwarded chunk: every Redis round trip gets slower
        lag = LagReader(pipeline.names.topic, pipeline.names.group)
        try:
            deadline = time.monotonic() + 2 * OUTAGE_S
            while time.monotonic() < deadline:
                seen["lag"] = max(seen["lag"], lag.lag() or 0)
                growth = max(rss_mb(pid) - before[pid] for pid in pids)
                seen["growth_mb"] = max(seen["growth_mb"], growth)
                time.sleep(1)
        finally:
            redis_proxy.delay_s = 0.0
            lag.close()

    assert_exact(run_scenario("slow-redis", pipeline, mongo_db, fault, votes=VOTES, settle_s=120))
    assert seen["lag"] > 0, "the slow store should have let lag build up"
    assert seen["growth_mb"] < 200, f"consumer memory grew by {seen['growth_mb']:.0f} MB"


def test_poison_records_mid_stream(pipeline: Pipeline, mongo_db: Any) -> None:
    topic = pipeline.names.topic

    def fault() -> None:
        producer = Producer({"bootstrap.servers": "127.0.0.1:9092"})
        for index, value in enumerate(
            [
                b"not json",
                b'{"vote_id": "no-fields"}',
                b"[]",
                b'{"vote_id":"x","name":"\\u0000"}',
                b"\xff" * 500_000,
            ]
        ):
            producer.produce(topic, key=f"poison-{index}".encode(), value=value)
        assert producer.flush(10) == 0

    before = _dead_letters(pipeline)
    assert_exact(run_scenario("poison-records", pipeline, mongo_db, fault, votes=VOTES))
    assert _dead_letters(pipeline) - before == 5


def _dead_letters(pipeline: Pipeline) -> int:
    try:
        return len(read_all(pipeline.names.dlq_topic, timeout_s=15))
    except KeyError:
        return 0


@pytest.mark.skipif(not FULL, reason="overload runs in `make chaos` only (VOTES_CHAOS_FULL=1)")
def test_overload_is_shed_with_503_and_nothing_is_lost(pipeline: Pipeline, mongo_db: Any) -> None:
    """Offer far more than the machine takes at once: 250 concurrent batches of 1000 votes."""
    import asyncio
    import uuid

    import httpx

    band = f"Chaos overload {uuid.uuid4().hex[:8]}"
    votes = [{"name": band, "album": "x", "year": 2000, "rank": 1}] * 1000

    async def blast() -> list[tuple[int, float, int, str]]:
        limits = httpx.Limits(max_connections=250, max_keepalive_connections=0)
        async with httpx.AsyncClient(
            base_url=str(pipeline.http.base_url), timeout=60, limits=limits
        ) as client:

            async def one() -> tuple[int, float, int, str]:
                started = time.monotonic()
                try:
                    response = await client.post("/votes/batch", json={"votes": votes})
                except httpx.TransportError:  # no answer within the timeout: status 0, reported
                    return (0, time.monotonic() - started, 0, "")
                accepted = response.json()["accepted"] if response.status_code == 202 else 0
                return (
                    response.status_code,
                    time.monotonic() - started,
                    accepted,
                    response.headers.get("retry-after", ""),
                )

            return await asyncio.gather(*(one() for _ in range(250)))

    outcomes = asyncio.run(blast())
    statuses = {status for status, *_ in outcomes}
    accepted = sum(n for _, _, n, _ in outcomes)
    unanswered = sum(1 for status, *_ in outcomes if status == 0)
    latencies = sorted(t for status, t, _, _ in outcomes if status == 202)
    shed = sorted(t for status, t, _, _ in outcomes if status == 503)
    picture = (
        (
            f"{len(latencies)} accepted (s: p50 {latencies[len(latencies) // 2]:.1f}, "
            f"p90 {latencies[int(len(latencies) * 0.9)]:.1f}, max {latencies[-1]:.1f}), "
            f"{len(shed)} shed (s: max {shed[-1] if shed else 0:.1f})"
        )
        if latencies
        else "none accepted"
    )
    picture += f", {unanswered} without an answer in 60 s" if unanswered else ""

    blast_ended = time.monotonic()
    deadline = blast_ended + 180
    while time.monotonic() < deadline and pipeline.results()["by_band"].get(band, 0) < accepted:
        time.sleep(1)
    recover_s = time.monotonic() - blast_ended
    time.sleep(1)
    counted = pipeline.results()["by_band"].get(band, 0)
    stored = mongo_db["votes"].count_documents({"name": band})
    ScenarioReport(
        "overload",
        sent=250 * 1000,
        requests=250,
        accepted=accepted,
        counted=counted,
        stored=stored,
        recover_s=round(recover_s, 1),
        rejections={"http 503": len(shed)},
        shed=len(shed) * 1000,
        notes=f"250 batches of 1000 at once: {picture}",
    ).save()
    assert statuses <= {202, 503}, (
        f"only 202 and 503 are acceptable under overload: {statuses}; {picture}"
    )
    assert all(retry for status, _, _, retry in outcomes if status == 503)
    # Accepted within Serve's 30 s timeout, shed at once: docs/decisions/0001-ingress-on-asyncio.md
    assert latencies and latencies[int(len(latencies) * 0.99) - 1] < 30, picture
    assert not shed or shed[-1] < 10, picture
    assert counted == accepted
    assert stored == accepted
    assert pipeline.http.get("/healthz").status_code == 200
