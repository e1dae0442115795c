"""`make bench-scale`'s ingest: each series at each ingress replica count, from several
load-generator processes, every repeat reconciled against the records a reader gets."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from bench.harness.cpu import CpuMeter, stack_pids
from bench.harness.env import MONGO_URL, REDIS_HOST, REDIS_PORT, log
from bench.harness.fleet import LoadFleet, LoadSpec, concurrency_per_process
from bench.harness.report.scale import cpu_shares, point_cpu
from bench.harness.stores import clear_votes_db
from bench.harness.summary import summarize_runs
from bench.scenarios.scale.options import SERIES
from bench.scenarios.scale.serving import ingress_actor_options, start_serve, wait_for_replicas
from devkit.kafka import KAFKA, create_topics, readable_records

if TYPE_CHECKING:
    from bench.scenarios.scale.run import ScaleBench


def serve_args(scale: ScaleBench, replicas: int) -> tuple[dict[str, Any], str]:
    """The app's args for the instance of `replicas`: its own topic, group and database."""
    topic = scale.names.topic_for(f"ingest-x{replicas}")
    dlq = topic + ".dlq"
    scale.topics += [topic, dlq]
    create_topics([topic])
    create_topics([dlq], partitions=1)
    database = scale.names.mongo_database_for(f"ingest_x{replicas}")
    scale.mongo_databases.append(database)
    return {
        "kafka_bootstrap_servers": KAFKA,
        "kafka_topic": topic,
        "kafka_dlq_topic": dlq,
        "kafka_consumer_group": scale.names.group_for(f"ingest-x{replicas}"),
        "redis_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/{scale.args.redis_db}",
        "mongo_url": MONGO_URL,
        "mongo_database": database,
    }, topic


def measure(scale: ScaleBench) -> None:
    """Every series at every replica count of the plan, each count on a fresh `serve run`."""
    for replicas in scale.plan.replicas:
        try:
            ingest_at(scale, replicas)
        except Exception as exc:  # noqa: BLE001 - the other replica counts still get measured
            log(f"ingest x{replicas}: FAILED: {type(exc).__name__}: {exc}")
            scale.failures.append(f"ingest x{replicas}: {type(exc).__name__}: {exc}")


def ingest_at(scale: ScaleBench, replicas: int) -> None:
    """A fresh Serve instance with `replicas` ingress replicas; every series on it."""
    args, topic = serve_args(scale, replicas)
    actor_options = ingress_actor_options(scale.config, replicas, scale.cores)
    scale.ingress_num_cpus[replicas] = actor_options["num_cpus"]
    overrides = {
        "VoteIngress": {"num_replicas": replicas, "ray_actor_options": actor_options},
        # The idle pool: one replica that reserves no CPU.
        "VotePersister": {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0}},
    }
    log(
        f"ingest x{replicas}: starting Serve with {replicas} ingress replica(s) "
        f"(num_cpus {actor_options['num_cpus']} each)"
    )
    started = time.monotonic()
    instance = start_serve(scale.args, args, overrides)
    try:
        wait_for_replicas(instance, replicas)
        startup_s = round(time.monotonic() - started, 1)
        log(f"ingest x{replicas}: {replicas} replica(s) up in {startup_s} s")
        for series in scale.plan.series:
            name = f"{series}_x{replicas}"

            def one(s: str = series, i: Any = instance) -> dict[str, Any]:
                return ingest_repeat(scale, s, replicas, i, topic)

            runs = scale.repeats(name, one)
            busy, shares = point_cpu(runs)
            scale.ingest_points.append(
                summarize_runs(name, runs)
                | {
                    "series": series,
                    "size": replicas,
                    "busy_share": busy,
                    "cpu_share": shares,
                    "startup_s": startup_s,
                    "num_cpus_per_replica": actor_options["num_cpus"],
                }
            )
    finally:
        instance.stop()
        clear_votes_db(scale.args.redis_db)


def ingest_repeat(
    scale: ScaleBench, series: str, replicas: int, instance: Any, topic: str
) -> dict[str, Any]:
    """One repeat: P processes load the instance; CPU over the measured window; reconcile."""
    plan = scale.plan
    protocol, kind = SERIES[series]
    per_replica = (
        plan.batch_concurrency_per_replica if kind == "batch" else plan.concurrency_per_replica
    )
    per_process = concurrency_per_process(per_replica, replicas, plan.loadgen_processes)
    spec = LoadSpec(
        protocol=protocol,
        kind=kind,
        host="127.0.0.1",
        http_port=instance.http_port,
        grpc_target=instance.grpc_target,
        concurrency=per_process,
        warmup_s=plan.warmup_s,
        duration_s=plan.duration_s,
        tag=f"{scale.names.run_id}{series[0]}{time.monotonic_ns() % 10**8}",
    )
    records_before = readable_records(topic)
    ends_before = partition_ends(topic)
    with LoadFleet(spec, plan.loadgen_processes) as fleet:
        fleet.prepare()
        pids = {pid: part for part, pid in stack_pids().items() if pid}
        meter = CpuMeter(pids | dict.fromkeys(fleet.pids, "loadgen"), [instance.proc.pid])
        go = fleet.go()
        time.sleep(max(0.0, go + plan.warmup_s - time.monotonic()))
        meter.start()
        time.sleep(max(0.0, go + plan.warmup_s + plan.duration_s - time.monotonic()))
        cpu_s = meter.stop()
        result = fleet.collect()
    return result.summary() | {
        "concurrency_total": per_process * plan.loadgen_processes,
        "concurrency_per_process": per_process,
        "loadgen_processes": plan.loadgen_processes,
        **reconcile(topic, records_before, ends_before, result.accepted_votes, result.error_count),
        "wall_s": round(meter.wall_s, 2),
        "cpu_share": cpu_shares(cpu_s, meter.wall_s, scale.cores),
        # CPU per vote over the same window as the votes (summarize_runs reads it).
        "cpu_window": {"votes": result.window_votes, "cpu_s": cpu_s},
    }


# -- persist --


def reconcile(
    topic: str, records_before: int, ends_before: dict[int, int], accepted: int, errors: int
) -> dict[str, Any]:
    """Votes accepted == records a read_committed reader gets (not the high watermarks: each
    batch's Kafka transaction leaves a commit marker that takes an offset), and no errors."""
    records = readable_records(topic) - records_before
    text = f"accepted {accepted} == records in Kafka {records}"
    if records != accepted:  # say whether the extra records repeat vote_ids (retried requests)
        read, distinct = distinct_keys(topic, ends_before, partition_ends(topic))
        text += f" (of the {read} read, {distinct} distinct vote_ids)"
    return {
        "kafka_records": records,
        "reconciled": records == accepted and not errors,
        "reconciliation": text,
    }


def partition_ends(topic: str) -> dict[int, int]:
    """Each partition's high watermark: the offset its next record gets."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": f"scale-ends-{os.getpid()}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def distinct_keys(
    topic: str, start: dict[int, int], end: dict[int, int], timeout_s: float = 60.0
) -> tuple[int, int]:
    """Records read between two sets of partition ends, and how many distinct keys (vote_ids)
    they carry: fewer keys than records means some vote was written twice. Bounded in time."""
    from confluent_kafka import Consumer, TopicPartition

    wanted = {p: end[p] for p in end if end[p] > start.get(p, 0)}
    if not wanted:
        return 0, 0
    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": f"scale-keys-{os.getpid()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    keys: set[bytes] = set()
    read = 0
    try:
        consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in wanted])
        deadline = time.monotonic() + timeout_s
        while wanted and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is not None or message.partition() not in wanted:
                    continue
                if message.offset() < wanted[message.partition()]:
                    read += 1
                    keys.add(message.key() or b"")
            # The end is the position: a commit marker may take the last offset (never given).
            for tp in consumer.position([TopicPartition(topic, p) for p in wanted]):
                if tp.offset >= wanted[tp.partition]:
                    wanted.pop(tp.partition)
    finally:
        consumer.close()
    return read, len(keys)
