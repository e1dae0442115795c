"""The stores' counts for node_load.py's reconciliation, read inside the lab's namespace.

`node_counts.py count` (run by count_in_netns with `ip netns exec`, so it reaches the pods'
ClusterIPs) prints one JSON line: the distinct vote_ids a read_committed reader gets from Kafka,
Redis' total, the vote log's documents in FerretDB and /results' total; `node_counts.py redis`
prints Redis' total alone. The LAB_* variables (node_load.target) say where the stores are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import lab

COUNTS_TIMEOUT_S = 300  # FerretDB counts the whole log; Kafka is read to its end
DRAIN_TIMEOUT_S = 420  # the pool drains a backlog on 2 busy cores


@dataclass(frozen=True)
class Counts:
    kafka: int  # distinct vote_ids (the records' keys) a read_committed reader gets from the topic
    redis: int  # Redis' total counter
    mongo: int  # documents in the vote log
    results: int  # GET /results total
    kafka_records: int  # records, retries that reached Kafka twice included (the pool skips them)

    def minus(self, before: Counts) -> Counts:
        return Counts(*(a - b for a, b in zip(astuple(self), astuple(before), strict=True)))


RECONCILED = ("kafka", "redis", "mongo", "results")  # each must rise by the votes accepted


def parse_counts(stdout: str) -> Counts:
    """`node_counts.py count` prints one JSON object as its last line."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise lab.LabError("node_counts.py count printed nothing")
    data = json.loads(lines[-1])
    return Counts(*(int(data[field]) for field in (*RECONCILED, "kafka_records")))


def mismatches(accepted: int, increase: Counts, in_doubt: int) -> list[str]:
    """Every store's increase must equal the votes accepted, and no vote may be in doubt."""
    problems = [
        f"{store} increased by {value}, accepted {accepted} (difference {value - accepted:+d})"
        for store in RECONCILED
        if (value := getattr(increase, store)) != accepted
    ]
    if in_doubt:
        problems.append(f"{in_doubt} votes in doubt (given up or cut off): not exact by design")
    return problems


def count_in_netns(count_env: dict[str, str], what: str) -> str:
    """The stdout of `node_counts.py count|redis`, run in the namespace (it reaches the pods)."""
    cmd = lab.in_netns([str(lab.PYTHON), str(Path(__file__).resolve()), what])
    proc = subprocess.run(
        cmd,
        cwd=lab.REPO,
        capture_output=True,
        text=True,
        env={**lab.lab_env(), **count_env},
        timeout=COUNTS_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise lab.LabError(f"node_counts.py {what} failed:\n{proc.stderr.strip()[-1500:]}")
    return proc.stdout


def counts(count_env: dict[str, str]) -> Counts:
    """The stores' counts; retried twice: FerretDB once closed the connection under a count."""
    for _ in range(2):
        try:
            return parse_counts(count_in_netns(count_env, "count"))
        except lab.LabError as exc:
            lab.log(f"counting failed, again in 10s: {str(exc).splitlines()[-1]}")
            time.sleep(10)
    return parse_counts(count_in_netns(count_env, "count"))


def wait_drained(count_env: dict[str, str], before: Counts, accepted: int) -> tuple[Counts, float]:
    """Counts until Redis reached before + accepted (the pool stores in FerretDB first), bounded;
    a stall of 90 s ends the wait too (the reconciliation then shows what is missing)."""
    started = time.monotonic()
    last, changed = -1, started
    while True:
        now = int(count_in_netns(count_env, "redis").strip().splitlines()[-1])
        if now - before.redis >= accepted:
            break
        if now != last:
            last, changed = now, time.monotonic()
        if time.monotonic() - changed > 90 or time.monotonic() - started > DRAIN_TIMEOUT_S:
            break
        time.sleep(2)
    return counts(count_env), time.monotonic() - started


def redis_total() -> int:
    import redis

    from serve_app.stores.redis_counts import TOTAL

    return int(redis.Redis.from_url(os.environ["LAB_REDIS_URL"]).get(TOTAL) or 0)


def count_main() -> None:
    """Inside the namespace: the stores' counts as one JSON line (see counts())."""
    import httpx
    from confluent_kafka import Consumer, TopicPartition
    from pymongo import MongoClient

    from serve_app.stores.mongo_log import COLLECTION

    consumer = Consumer(
        {
            "bootstrap.servers": os.environ["LAB_KAFKA"],
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "votes-app",
            "sasl.password": os.environ["LAB_KAFKA_PASSWORD"],
            "group.id": "votes-persister",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:  # assigned, never subscribed: the reader never joins the pool's group
        topic = "votes"
        partitions = consumer.list_topics(topic, timeout=20).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1]
            for p in partitions
        }
        remaining = {p: end for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in remaining])
        records, vote_ids = 0, set[bytes | None]()
        deadline = time.monotonic() + COUNTS_TIMEOUT_S - 30
        while remaining and time.monotonic() < deadline:
            batch = [m for m in consumer.consume(10_000, 0.5) if m.error() is None]
            records += len(batch)
            vote_ids.update(m.key() for m in batch)
            for tp in consumer.position([TopicPartition(topic, p) for p in remaining]):
                if tp.offset >= remaining[tp.partition]:  # markers take offsets too
                    remaining.pop(tp.partition)
        if remaining:
            raise SystemExit(f"could not read {topic} to its end: {remaining}")
    finally:
        consumer.close()
    total = redis_total()
    mongo: Any = MongoClient(os.environ["LAB_MONGO_URL"], serverSelectionTimeoutMS=20_000)
    documents = int(mongo.get_default_database()[COLLECTION].count_documents({}))
    results = int(httpx.get(os.environ["LAB_RESULTS_URL"], timeout=20).json()["total"])
    print(
        json.dumps(
            {
                "kafka": len(vote_ids),
                "redis": total,
                "mongo": documents,
                "results": results,
                "kafka_records": records,
            }
        )
    )


if __name__ == "__main__" and sys.argv[1:] == ["count"]:
    count_main()
elif __name__ == "__main__" and sys.argv[1:] == ["redis"]:
    print(redis_total())
