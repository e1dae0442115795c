"""The ingress's own per-vote CPU, without Serve: what our code costs on the hot path.

    .venv/bin/python -m bench.tools.hotpath [--votes 20000]

Measures CPU time (this process: the event loop, librdkafka's threads and the delivery-report
poller) per vote for the hot path of `serve_app.ingress.deployment` against the real broker,
acks=all: VoteBatch/Vote validation -> accept() per vote -> VoteProducer.send() (encode_record per
vote, one future per request), for single votes and for batches of 1000. Prints a table; `--json`
for machine-readable output. Before the changes of docs/performance.md section 4 item 2 (re-
validation in accept(), one future per record) the same measurement gave 152 and 65 µs per vote.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from devkit.kafka import KAFKA, create_topics, delete_topics, readable_records
from devkit.names import RunNames
from loadtest.traffic import Traffic
from serve_app.domain.votes import Vote, VoteBatch, accept
from serve_app.ingress.producer import VoteProducer
from serve_app.settings import load_settings


async def measure(kind: str, topic: str, votes: int) -> dict[str, Any]:
    traffic = Traffic(3)
    size = 1000 if kind == "batch" else 1
    bodies = [
        json.dumps({"votes": traffic.batch(size, vote_id=False)})
        if kind == "batch"
        else json.dumps(traffic.vote())
        for _ in range(16)
    ]
    settings = load_settings({"kafka_topic": topic, "kafka_bootstrap_servers": KAFKA})
    producer = VoteProducer(settings)
    concurrency = 4 if kind == "batch" else 32
    requests = max(1, votes // size)
    counter = iter(range(requests))

    async def one(body: str) -> None:
        if kind == "batch":
            parsed = VoteBatch.model_validate_json(body).votes
        else:
            parsed = [Vote.model_validate_json(body)]
        await producer.send([accept(v, "http") for v in parsed])

    async def worker() -> None:
        for n in counter:
            await one(bodies[n % len(bodies)])

    await one(bodies[0])  # connect, idempotent-producer id
    before = readable_records(topic)
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    producer.close()
    sent = requests * size
    return {
        "kind": kind,
        "votes": sent,
        "cpu_us_per_vote": round(1e6 * cpu / sent, 1),
        "votes_per_s": round(sent / wall, 1),
        "kafka_records": readable_records(topic) - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--votes", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    names = RunNames("bench")
    topic = names.topic_for("hotpath")
    create_topics([topic])
    rows = []
    try:
        for kind in ("single", "batch"):
            votes = args.votes if kind == "batch" else max(1000, args.votes // 10)
            rows.append(asyncio.run(measure(kind, topic, votes)))
    finally:
        delete_topics([topic])
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'kind':7} {'votes':>7} {'CPU us/vote':>12} {'votes/s':>9}  reconciled")
    for row in rows:
        print(
            f"{row['kind']:7} {row['votes']:>7} {row['cpu_us_per_vote']:>12} "
            f"{row['votes_per_s']:>9}  {row['kafka_records'] == row['votes']}"
        )


if __name__ == "__main__":
    main()
