"""The dead-letter sink: poison records go to the DLQ topic with why and where they came from."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from serve_app.pool.ports import Poison

log = logging.getLogger("ray.serve").getChild(__name__)

# A record near the broker's size limit plus our headers could be refused by the DLQ, and a
# refused poison record would stall its partition: a longer value keeps only this prefix.
DLQ_MAX_VALUE_BYTES = 512 * 1024


def dead_letter(poison: Poison) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value and headers a poison record is produced to the DLQ with."""
    record = poison.record
    value = record.value() or b""
    headers = list(record.headers() or []) + [
        ("dlq.reason", poison.reason.encode()),
        ("dlq.topic", record.topic().encode()),
        ("dlq.partition", str(record.partition()).encode()),
        ("dlq.offset", str(record.offset()).encode()),
        ("dlq.original_bytes", str(len(value)).encode()),
    ]
    if len(value) > DLQ_MAX_VALUE_BYTES:
        value = value[:DLQ_MAX_VALUE_BYTES]
        headers.append(("dlq.truncated", b"true"))
    return value, headers


class KafkaDeadLetters:
    """Produces poison records to the DLQ topic and waits for the broker's acks."""

    def __init__(self, producer: Producer, topic: str, timeout_s: float) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout_s = timeout_s

    def send(self, poison: Sequence[Poison]) -> int:
        """Produce the records and wait for the acks; raises KafkaException unless all landed."""
        failures: list[str] = []

        def report(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error.str())

        for item in poison:
            record = item.record
            value, headers = dead_letter(item)
            self._producer.produce(
                self._topic, key=record.key(), value=value, headers=headers, on_delivery=report
            )
            log.warning("dead-lettered %s[%d]@%d: %s", record.topic(), record.partition(),
                        record.offset(), item.reason)
        remaining = self._producer.flush(self._timeout_s)
        if remaining or failures:
            raise KafkaException(f"dead-letter topic did not take {remaining or len(failures)} records")
        return len(poison)

    def close(self, timeout_s: float = 5.0) -> None:
        self._producer.flush(timeout_s)
