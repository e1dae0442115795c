"""`persist`: votes/s the consumer pool persists (MongoDB log + Redis counters + offset commits).

N records are produced into a fresh topic first; then a pool of `replicas` consumers (each the
exact loop of a VotePersister replica, `bench.pool_worker`) starts in a fresh consumer group and
the clock runs from the first counted vote to the last. Redis database `redis_db` is the pool's
alone (its counter keys have fixed names): its `votes:*` keys are deleted before every repeat.

With several workers, the first one to join starts alone and the group rebalances when the others
join (a pause of 1-2 s here, and redelivered records): `steady_votes_per_s` is the rate from the
moment the group is stable with every worker holding partitions, when that leaves at least a
fifth of the records (decision 0014).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psutil
import redis

from bench.harness.cpu import cpu_delta, cpu_of, stack_pids
from bench.harness.env import MONGO_URL, PY, REDIS_HOST, REDIS_PORT, log
from bench.harness.processes import Proc
from bench.harness.stores import clear_votes_keys, drop_mongo_database, refuse_foreign_keys
from bench.harness.variants import WRITE_CONCERNS, persist_name
from bench.scenarios.raw_sinks import vote_records
from devkit.kafka import KAFKA, topic_records
from serve_app.domain.votes import encode_record
from serve_app.ingress.producer import producer_config
from serve_app.settings import load_settings
from serve_app.stores import redis_counts as rc

if TYPE_CHECKING:
    from bench.harness.runner import Bench


def preload(topic: str, count: int) -> int:
    """Produce `count` distinct vote records (unique vote_ids) into topic; returns records there."""
    from confluent_kafka import Producer

    settings = load_settings({"kafka_topic": topic, "kafka_bootstrap_servers": KAFKA})
    producer = Producer(producer_config(settings) | {"client.id": "bench-preload", "linger.ms": 20})
    templates = vote_records(512)
    tag = uuid.uuid4().hex[:10]
    failed = []
    for i in range(count):
        record = templates[i % len(templates)].model_copy(update={"vote_id": f"p{tag}-{i}"})
        message = encode_record(record)
        while True:
            try:
                producer.produce(
                    topic,
                    key=message.key,
                    value=message.value,
                    headers=message.headers,
                    on_delivery=lambda err, _m: err and failed.append(err),
                )
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    if left or failed:
        raise RuntimeError(f"preload: {left} undelivered, {len(failed)} failed")
    return topic_records(topic)


def workers_cpu(workers: list[Proc]) -> float:
    total = 0.0
    for worker in workers:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(worker.pid).cpu_times()
            total += times.user + times.system
    return total


def group_settled(admin: Any, group: str, members: int) -> bool:
    """The consumer group is stable with `members` members, each holding partitions."""
    from confluent_kafka import ConsumerGroupState

    try:
        description = admin.describe_consumer_groups([group], request_timeout=2)[group].result(
            timeout=3
        )
    except Exception:  # noqa: BLE001 - not known yet, or the broker is busy: not settled
        return False
    return (
        description.state == ConsumerGroupState.STABLE
        and len(description.members) == members
        and all(m.assignment.topic_partitions for m in description.members)
    )


def persist_run(
    topic: str,
    group: str,
    mongo_db: str,
    redis_db: int,
    expected: int,
    replicas: int,
    timeout_s: float,
    mongo_url: str = MONGO_URL,
    extra_cpu: Callable[[], dict[str, float]] | None = None,
    write_concern: str | None = None,
) -> dict[str, Any]:
    """Start `replicas` pool workers on the preloaded topic; time the drain; reconcile.

    `mongo_url`: the vote log on another FerretDB than the stack's (bench.tools.ferretdb_backends);
    `extra_cpu`: CPU seconds so far of other processes (that FerretDB), measured in the same window;
    `write_concern`: the workers' `mongo_write_concern` (None: the setting's default).
    """
    from confluent_kafka.admin import AdminClient
    from pymongo import MongoClient

    admin = AdminClient({"bootstrap.servers": KAFKA})
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db)
    clear_votes_keys(client)
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith("VOTES_")}
        | {
            "VOTES_KAFKA_BOOTSTRAP_SERVERS": KAFKA,
            "VOTES_KAFKA_TOPIC": topic,
            "VOTES_KAFKA_DLQ_TOPIC": topic + ".dlq",
            "VOTES_KAFKA_CONSUMER_GROUP": group,
            "VOTES_REDIS_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
            "VOTES_MONGO_URL": mongo_url,
            "VOTES_MONGO_DATABASE": mongo_db,
        }
        | ({"VOTES_MONGO_WRITE_CONCERN": write_concern} if write_concern else {})
    )
    workers = [
        Proc(f"pool-{replicas}-{i}", [PY, "-m", "bench.pool_worker"], env=env)
        for i in range(replicas)
    ]
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    first_at = first_total = done_at = None
    cpu_first = cpu_done = 0.0
    stack = stack_pids()

    def cpu_now() -> dict[str, float]:
        return cpu_of(stack) | (extra_cpu() if extra_cpu else {})

    stack_first: dict[str, float] = {}
    stack_done: dict[str, float] = {}
    total = 0
    settled: tuple[float, int] | None = None  # when the group settled, and the count then
    checked_at = 0.0
    try:
        while time.monotonic() - started < timeout_s:
            total = int(client.get(rc.TOTAL) or 0)
            now = time.monotonic()
            samples.append((now, total))
            if total and first_at is None:
                first_at, first_total = now, total
                cpu_first, stack_first = workers_cpu(workers), cpu_now()
            if replicas > 1 and settled is None and now - checked_at >= 0.2:
                checked_at = now
                if group_settled(admin, group, replicas):
                    settled = (time.monotonic(), int(client.get(rc.TOTAL) or 0))
            if total >= expected:
                done_at = now
                cpu_done, stack_done = workers_cpu(workers), cpu_now()
                break
            if not all(w.alive() for w in workers):
                raise RuntimeError("a pool worker died:\n" + "\n".join(w.tail(10) for w in workers))
            time.sleep(0.05)
    finally:
        for worker in workers:
            worker.stop(grace_s=15)
    mongo: Any = MongoClient(mongo_url, serverSelectionTimeoutMS=5000, socketTimeoutMS=120_000)
    try:
        stored = mongo[mongo_db]["votes"].count_documents({})
        if mongo_url != MONGO_URL:
            mongo.drop_database(mongo_db)
    finally:
        mongo.close()
    if mongo_url == MONGO_URL:
        drop_mongo_database(mongo_db)
    counted = int(client.get(rc.TOTAL) or 0)
    clear_votes_keys(client)
    client.close()
    if done_at is None or first_at is None:
        log(f"persist x{replicas}: not drained within {timeout_s:.0f}s ({total}/{expected})")
        rate = (total - (first_total or 0)) / max(1e-9, time.monotonic() - (first_at or started))
    else:
        rate = (expected - first_total) / max(1e-9, done_at - first_at)
    steady = None
    if replicas == 1:
        steady = rate
    elif settled is not None and done_at is not None and expected - settled[1] >= expected / 5:
        steady = (expected - settled[1]) / max(1e-9, done_at - settled[0])
    return {
        "votes_per_s": round(rate, 1),
        "p50_ms": None,
        "p99_ms": None,
        # From the moment every worker held partitions (None: the group settled too late to tell).
        "steady_votes_per_s": None if steady is None else round(steady, 1),
        "settled_s": None if settled is None else round(settled[0] - started, 2),
        "errors": 0 if done_at is not None else 1,
        "accepted": expected,
        "counted": counted,
        "stored": stored,
        "reconciled": counted == expected and stored == expected,
        "reconciliation": f"records {expected} == counted {counted} == stored {stored}",
        "startup_s": round((first_at or started) - started, 2),
        "drain_s": round((done_at or time.monotonic()) - (first_at or started), 2),
        "replicas": replicas,
        # CPU from the first counted vote to the last (steady state: no start-up, no checks).
        "cpu_window": {
            "votes": (expected - (first_total or 0)) if done_at is not None else 0,
            "cpu_s": cpu_delta(stack_first, stack_done)
            | {"pool_worker": round(max(0.0, cpu_done - cpu_first), 3)},
        },
    }


# ---- the group ---------------------------------------------------------------------------------


def measure(bench: Bench) -> None:
    """persist_xN for each pool size, under each write concern (their repeats interleaved)."""
    topic = bench.new_topic("persist", dlq=True)
    db = bench.args.persist_redis_db
    refuse_foreign_keys(db, "--persist-redis-db")
    log(f"persist: preloading {bench.plan.persist_records} records")
    records = preload(topic, bench.plan.persist_records)
    timeout = max(60.0, records / 200)
    concerns = bench.plan.persist_write_concerns
    for replicas in bench.plan.persist_replicas:

        def one(r: int = replicas, concern: str | None = None) -> dict[str, Any]:
            run_id = time.monotonic_ns() % 10**8
            return persist_run(
                topic,
                bench.names.group_for(f"persist-{r}-{run_id}"),
                bench.names.mongo_database_for(f"persist_{r}_{run_id}"),
                db,
                records,
                r,
                timeout,
                write_concern=concern,
            )

        names = {concern: persist_name(replicas, concern, concerns[0]) for concern in concerns}
        runs = bench.variant_repeats(
            WRITE_CONCERNS,
            concerns,
            names,
            lambda c, r=replicas: one(r, c),
            bench.plan.repeats_of("persist"),
        )
        for concern in concerns:
            bench.record(
                names[concern],
                runs[concern],
                path="pool",
                replicas=replicas,
                records=records,
                write_concern=concern,
                write_concern_baseline=concerns[0],
                unit="votes persisted (Mongo log + Redis counters + commit)",
                **(
                    WRITE_CONCERNS.info(concern, concerns, names[concerns[0]])
                    if len(concerns) > 1
                    else {}
                ),
            )
