"""The dead-letter sink: poison records go to the DLQ topic with why and where they came from.

Each copy is keyed by where the poison record was read, `<topic>/<partition>/<offset>`, and a
replica produces each poison record once: a retry after a flush that timed out waits for the
copies already queued instead of producing them again, and a record the DLQ acknowledged is not
produced again when its batch comes back to the same replica. A crash or a rebalance between the
DLQ's ack and the offset commit makes another replica dead-letter the record again: the same key,
so a DLQ reader deduplicates on it (docs/decisions/0021-dead-letters-once.md).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Producer

from serve_app.domain.votes import KafkaHeaders
from serve_app.kafka_errors import ReplaceableProducer
from serve_app.pool.ports import ConsumedRecord, Poison

log = logging.getLogger("ray.serve").getChild(__name__)

# A record near the broker's size limit plus our headers could be refused by the DLQ, and a
# refused poison record would stall its partition: a longer value keeps only this prefix.
DLQ_MAX_VALUE_BYTES = 512 * 1024
# Keys of acknowledged dead letters a replica remembers, so that a batch redelivered to it (its
# consumer replaced, a partition back after a rebalance) is not dead-lettered again. Poison is rare.
LANDED_REMEMBERED = 10_000


def dead_letter_key(record: ConsumedRecord) -> bytes:
    """The DLQ key of a poison record: where it was read, the same for every copy of it."""
    return f"{record.topic()}/{record.partition()}/{record.offset()}".encode()


def dead_letter(poison: Poison) -> tuple[bytes, KafkaHeaders]:
    """The value and headers a poison record is produced to the DLQ with."""
    record = poison.record
    value = record.value() or b""
    headers: KafkaHeaders = [
        *(record.headers() or []),
        ("dlq.reason", poison.reason.encode()),
        ("dlq.topic", record.topic().encode()),
        ("dlq.partition", str(record.partition()).encode()),
        ("dlq.offset", str(record.offset()).encode()),
        ("dlq.original_bytes", str(len(value)).encode()),
    ]
    original_key = record.key()
    if original_key is not None:  # the DLQ key is the record's place; its own key is kept here
        headers.append(("dlq.original_key", original_key))
    if len(value) > DLQ_MAX_VALUE_BYTES:
        value = value[:DLQ_MAX_VALUE_BYTES]
        headers.append(("dlq.truncated", b"true"))
    return value, headers


class KafkaDeadLetters:
    """Produces poison records to the DLQ topic and waits for the broker's acks.

    Called on the consume loop's thread only; the delivery reports run there too (in flush).
    """

    def __init__(
        self,
        producers: ReplaceableProducer,
        topic: str,
        timeout_s: float,
        remembered: int = LANDED_REMEMBERED,
    ) -> None:
        self._producers = producers
        self._topic = topic
        self._timeout_s = timeout_s
        self._remembered = remembered
        self._waiting: set[bytes] = set()  # produced, delivery report still due
        self._failed: dict[bytes, str] = {}  # the report said it failed: produced again next time
        self._landed: OrderedDict[bytes, bool] = OrderedDict()  # acknowledged -> counted by a send

    def send(self, poison: Sequence[Poison]) -> int:
        """Produce the records not yet in the DLQ and wait for their acks; how many are new there.

        Raises KafkaException unless the DLQ acknowledged every one of them; a record still
        waiting for its ack then is waited for by the next call, not produced again.
        """
        broken = self._producers.replace_if_fatal()
        if broken is not None:
            self._abandon(broken)
        producer = self._producers.producer
        keys = [self._produce(producer, item) for item in poison]
        if any(key in self._waiting for key in keys):
            producer.flush(self._timeout_s)
        missing = [key for key in keys if key not in self._landed]
        if missing:
            waiting = sum(key in self._waiting for key in missing)
            errors = sorted({self._failed[key] for key in missing if key in self._failed})
            raise KafkaException(
                f"the dead-letter topic has not acknowledged {len(missing)} of {len(keys)} records "
                f"({waiting} still waiting, not produced again){'; ' if errors else ''}"
                f"{', '.join(errors)}"
            )
        return self._count_new(keys)

    def close(self, timeout_s: float = 5.0) -> None:
        self._producers.producer.flush(timeout_s)

    def _produce(self, producer: Producer, item: Poison) -> bytes:
        """Produce one poison record unless the DLQ has it or its delivery report is due."""
        record = item.record
        key = dead_letter_key(record)
        if key in self._landed or key in self._waiting:
            return key
        self._failed.pop(key, None)
        value, headers = dead_letter(item)

        def report(error: KafkaError | None, _message: object) -> None:
            self._waiting.discard(key)
            if error is None:
                self._landed.setdefault(key, False)
            else:
                self._failed[key] = error.str()

        try:
            producer.produce(self._topic, key=key, value=value, headers=headers, on_delivery=report)
        except KafkaException as exc:
            if exc.args and isinstance(exc.args[0], KafkaError):
                self._producers.on_error(exc.args[0])  # a fatal one replaces the producer
            raise
        self._waiting.add(key)
        log.warning(
            "dead-lettering %s[%d]@%d: %s",
            record.topic(),
            record.partition(),
            record.offset(),
            item.reason,
        )
        return key

    def _abandon(self, broken: Producer) -> None:
        """Drop what a producer replaced after a fatal error holds: it is produced again.

        A record it had in flight may have landed all the same: then the DLQ has two copies,
        with the same key.
        """
        broken.purge(in_queue=True, in_flight=True, blocking=False)
        broken.poll(0)
        self._waiting.clear()

    def _count_new(self, keys: Sequence[bytes]) -> int:
        """How many of these landed records no earlier send counted; remembers the newest keys."""
        new = 0
        for key in keys:
            if not self._landed.get(key, True):
                self._landed[key] = True
                new += 1
        while len(self._landed) > self._remembered:
            self._landed.popitem(last=False)
        return new
