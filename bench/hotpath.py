"""The ingress's own per-vote CPU, without Serve: what our code costs, and what a leaner one would.

    .venv/bin/python -m bench.hotpath [--votes 20000]

Measures CPU time (this process: the event loop, librdkafka's threads and the delivery-report
poller) per vote for the hot path of `serve_app.ingest` against the real broker, acks=all:

  current   VoteBatch/Vote validation -> accept() per vote -> VoteProducer.send() (encode_record
            per vote, one asyncio future and one call_soon_threadsafe per record)
  lean      the same validation -> records built without re-validating (model_construct),
            received_at formatted once per request, the JSON written directly -> one future per
            request, resolved once when its last delivery report arrives

for single votes and for batches of 1000. Prints a table; `--json` for machine-readable output.
The difference is what the serve_app changes proposed in docs/performance.md would buy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench.common import KAFKA, Names, create_topics, delete_topics, topic_records
from loadtest.traffic import Traffic
from serve_app.producer import VoteProducer, producer_config
from serve_app.settings import load_settings
from serve_app.votes import RECORD_SCHEMA, Vote, VoteBatch, accept, format_timestamp

HEADERS = {source: [("content-type", b"application/json"), ("schema", RECORD_SCHEMA.encode()),
                    ("source", source.encode())] for source in ("http", "grpc")}


class LeanProducer:
    """VoteProducer's contract (return once Kafka acked every record), one future per call."""

    def __init__(self, topic: str) -> None:
        from confluent_kafka import Producer

        settings = load_settings({"kafka_topic": topic, "kafka_bootstrap_servers": KAFKA})
        self._producer = Producer(producer_config(settings) | {"client.id": "bench-lean"})
        self._topic = topic
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.05)

    async def send(self, messages: list[tuple[bytes, bytes]], source: str) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        state = {"left": len(messages), "error": None}
        lock = threading.Lock()

        def settle() -> None:
            if not done.done():
                if state["error"]:
                    done.set_exception(RuntimeError(str(state["error"])))
                else:
                    done.set_result(None)

        def report(error: Any, _message: Any) -> None:
            with lock:
                state["left"] -= 1
                if error is not None and state["error"] is None:
                    state["error"] = error
                    loop.call_soon_threadsafe(settle)
                elif state["left"] == 0:
                    loop.call_soon_threadsafe(settle)

        headers = HEADERS[source]
        for key, value in messages:
            self._producer.produce(self._topic, key=key, value=value, headers=headers, on_delivery=report)
        await asyncio.wait_for(done, 6)

    def close(self) -> None:
        self._producer.flush(10)
        self._closing.set()


def lean_messages(votes: list[Vote], source: str) -> list[tuple[bytes, bytes]]:
    stamp = format_timestamp(datetime.now(UTC))
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    out = []
    for vote in votes:
        vote_id = vote.vote_id or str(uuid.uuid4())
        out.append((vote_id.encode(), dumps({
            "vote_id": vote_id, "name": vote.name, "album": vote.album, "year": vote.year,
            "rank": vote.rank, "received_at": stamp, "source": source}).encode()))
    return out


async def measure(kind: str, variant: str, topic: str, votes: int) -> dict[str, Any]:
    traffic = Traffic(3)
    size = 1000 if kind == "batch" else 1
    bodies = [json.dumps({"votes": traffic.batch(size, vote_id=False)}) if kind == "batch"
              else json.dumps(traffic.vote()) for _ in range(16)]
    settings = load_settings({"kafka_topic": topic, "kafka_bootstrap_servers": KAFKA})
    producer: Any = VoteProducer(settings) if variant == "current" else LeanProducer(topic)
    concurrency = 4 if kind == "batch" else 32
    requests = max(1, votes // size)
    counter = iter(range(requests))

    async def one(body: str) -> None:
        if kind == "batch":
            parsed = VoteBatch.model_validate_json(body).votes
        else:
            parsed = [Vote.model_validate_json(body)]
        if variant == "current":
            await producer.send([accept(v, "http") for v in parsed])
        else:
            await producer.send(lean_messages(list(parsed), "http"), "http")

    async def worker() -> None:
        for n in counter:
            await one(bodies[n % len(bodies)])

    await one(bodies[0])  # connect, idempotent-producer id
    before = topic_records(topic)
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    producer.close()
    sent = requests * size
    return {"kind": kind, "variant": variant, "votes": sent, "cpu_us_per_vote": round(1e6 * cpu / sent, 1),
            "votes_per_s": round(sent / wall, 1), "kafka_records": topic_records(topic) - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--votes", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    names = Names()
    topic = names.topic("hotpath")
    create_topics([topic])
    rows = []
    try:
        for kind in ("single", "batch"):
            for variant in ("current", "lean"):
                votes = args.votes if kind == "batch" else max(1000, args.votes // 10)
                rows.append(asyncio.run(measure(kind, variant, topic, votes)))
    finally:
        delete_topics([topic])
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'kind':7} {'variant':8} {'votes':>7} {'CPU us/vote':>12} {'votes/s':>9}  reconciled")
    for row in rows:
        print(f"{row['kind']:7} {row['variant']:8} {row['votes']:>7} {row['cpu_us_per_vote']:>12} "
              f"{row['votes_per_s']:>9}  {row['kafka_records'] == row['votes']}")


if __name__ == "__main__":
    main()
