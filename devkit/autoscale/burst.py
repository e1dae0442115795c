"""The burst of the autoscaling scenario: valid vote records straight into the topic, paced."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from devkit.autoscale.spec import BANDS
from devkit.kafka import KAFKA


class Burst(threading.Thread):
    """Produce `records` valid vote records into the topic at up to `rate` per second."""

    def __init__(self, topic: str, records: int, rate: float) -> None:
        super().__init__(name="burst", daemon=True)
        self.topic, self.records, self.rate = topic, records, rate
        self.acked = 0
        self.errors = 0
        self.done = threading.Event()
        self._halt = threading.Event()

    def halt(self) -> None:
        self._halt.set()

    def _report(self, error: Any, _message: Any) -> None:
        if error is None:
            self.acked += 1
        else:
            self.errors += 1

    def run(self) -> None:
        from confluent_kafka import Producer

        from serve_app.domain.votes import Vote, accept, encode_record

        producer = Producer(
            {
                "bootstrap.servers": KAFKA,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 20,
                "queue.buffering.max.messages": 200_000,
            }
        )
        templates = [
            accept(Vote(name=band, album=album, year=1980 + i, rank=1 + i), "http")
            for i, (band, album) in enumerate(BANDS)
        ]
        started = time.monotonic()
        now = datetime.now(UTC)
        try:
            for i in range(self.records):
                if self._halt.is_set():
                    break
                if i % 1000 == 0:
                    now = datetime.now(UTC)
                    ahead = i / self.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
                record = templates[i % len(templates)].model_copy(
                    update={"vote_id": str(uuid.uuid4()), "received_at": now}
                )
                message = encode_record(record)
                while True:
                    try:
                        producer.produce(
                            self.topic,
                            key=message.key,
                            value=message.value,
                            headers=message.headers,
                            on_delivery=self._report,
                        )
                        break
                    except BufferError:
                        producer.poll(0.05)
                producer.poll(0)
            producer.flush(60)
        finally:
            self.done.set()
