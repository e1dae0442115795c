"""Batches into Kafka all or nothing: one Kafka transaction per batch.

A single vote is one record, atomic with the idempotent `VoteProducer`. A batch spans partitions:
without a transaction, one partition's failure (or a timeout) left the other partitions' records
in Kafka behind a 503, and the pool counted them. Here a batch is produced in a transaction, the
pool reads `read_committed`, and a batch is answered 202 only once its transaction committed.
Why this shape (a few producers per replica, the flush before the commit, the outcome that can
be unknown): docs/decisions/0023-transactional-batches.md.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from serve_app.domain.votes import VoteRecord, encode_record
from serve_app.ingress.producer import KafkaOverloaded, KafkaUnavailable, producer_config
from serve_app.kafka_errors import KafkaErrorLog
from serve_app.settings import Settings

log = logging.getLogger("ray.serve").getChild(__name__)

# Every transactional.id of the ingress starts with this (the Kafka user's ACL names the prefix).
TRANSACTIONAL_ID_PREFIX = "votes-ingest-"
# An abort needs the transaction coordinator; when it does not answer soon, the producer is
# replaced and the coordinator aborts the transaction when the replacement starts (same id).
ABORT_TIMEOUT_S = 1.0

ProducerFactory = Callable[[dict[str, Any]], Producer]


class KafkaOutcomeUnknown(RuntimeError):
    """The commit request may have reached Kafka and no answer came: the batch may be counted.
    Answered 504 / DEADLINE_EXCEEDED, with the batch's vote_ids, so that a retry counts once."""


def transactional_config(settings: Settings, transactional_id: str) -> dict[str, Any]:
    timeout_ms = int(settings.kafka_delivery_timeout_s * 1000)
    return producer_config(settings) | {
        "client.id": "votes-ingest-batches",
        "transactional.id": transactional_id,
        # A transaction left open by a replaced producer blocks read_committed readers of its
        # partitions until the coordinator aborts it: at most this long (>= message.timeout.ms).
        "transaction.timeout.ms": max(10_000, 3 * timeout_ms),
    }


class TransactionalBatches:
    """A few transactional producers of one replica: each runs one batch's transaction at a time.

    Transactions block (init, flush, commit, abort), so each runs on a worker thread of its own;
    there are as many workers as producers, so a worker always finds an idle producer.
    """

    def __init__(
        self,
        settings: Settings,
        producers: int,
        make_producer: ProducerFactory = Producer,
        instance: str | None = None,
    ) -> None:
        # Ids unique per replica (a random instance): no producer ever fences another's.
        instance = instance or uuid.uuid4().hex[:12]
        self._topic = settings.kafka_topic
        self._timeout_s = settings.kafka_delivery_timeout_s
        self._idle: queue.SimpleQueue[_Transactions] = queue.SimpleQueue()
        for index in range(producers):
            transactional_id = f"{TRANSACTIONAL_ID_PREFIX}{instance}-{index}"
            self._idle.put(
                _Transactions(transactional_config(settings, transactional_id), make_producer)
            )
        self._workers = ThreadPoolExecutor(
            max_workers=producers, thread_name_prefix="kafka-transactions"
        )

    async def send(self, records: Sequence[VoteRecord]) -> None:
        """Return once the records are committed in Kafka, all of them. Raises KafkaOverloaded or
        KafkaUnavailable when none of them is (the transaction was aborted or never began), and
        KafkaOutcomeUnknown when Kafka did not answer the commit."""
        if not records:
            return
        queued_at = time.monotonic()
        job = self._workers.submit(self._run, list(records), queued_at)
        # A cancelled request leaves a started job running to its end; an unstarted one is dropped.
        await asyncio.wrap_future(job)

    def _run(self, records: list[VoteRecord], queued_at: float) -> None:
        waited = time.monotonic() - queued_at
        if waited > self._timeout_s:
            raise KafkaOverloaded(f"every transactional producer busy for {waited:.1f}s")
        transactions = self._idle.get_nowait()  # one per worker: never empty here
        try:
            transactions.commit(self._topic, records, self._timeout_s)
        finally:
            self._idle.put(transactions)

    def close(self) -> None:
        self._workers.shutdown(wait=True, cancel_futures=True)
        while not self._idle.empty():
            self._idle.get_nowait().close()


class _Transactions:
    """One transactional producer and its transactional.id, used by one worker at a time."""

    def __init__(self, config: dict[str, Any], make_producer: ProducerFactory) -> None:
        self._config = config | {"error_cb": self._on_client_error}
        self._make_producer = make_producer
        self._error_log = KafkaErrorLog("transactional producer")
        self._producer: Producer | None = None
        self._fatal: str | None = None

    def _on_client_error(self, error: KafkaError) -> None:
        self._error_log(error)
        if error.fatal():
            self._fatal = error.str()

    def _ready(self, timeout_s: float) -> Producer:
        if self._fatal is not None:
            log.error("transactional producer hit a fatal error (%s); replacing it", self._fatal)
            self._discard()
        if self._producer is None:
            producer = self._make_producer(self._config)
            try:
                # With the id of a discarded producer, this also ends that one's open transaction.
                producer.init_transactions(timeout_s)
            except KafkaException as exc:
                raise KafkaUnavailable(f"Kafka did not start a transaction: {_why(exc)}") from None
            self._producer = producer
        return self._producer

    def commit(self, topic: str, records: list[VoteRecord], timeout_s: float) -> None:
        producer = self._ready(timeout_s)
        failures: list[str] = []

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error.str())

        try:
            producer.begin_transaction()
            for record in records:
                message = encode_record(record)
                producer.produce(
                    topic,
                    key=message.key,
                    value=message.value,
                    headers=message.headers,
                    on_delivery=on_delivery,
                )
        except BufferError as exc:
            self._abort()
            raise KafkaOverloaded(f"producer queue full: {exc}") from None
        except KafkaException as exc:
            self._abort()
            raise KafkaUnavailable(f"Kafka refused a record of the batch: {_why(exc)}") from None
        # Every record delivered before the commit begins: until then an abort is always possible,
        # after it only the coordinator knows (message.timeout.ms bounds the flush).
        undelivered = producer.flush(timeout_s + 1.0)
        if undelivered or failures:
            self._abort()
            reason = failures[0] if failures else f"{undelivered} records not acknowledged"
            raise KafkaUnavailable(
                f"Kafka did not take the batch ({reason}); nothing of it was committed"
            )
        try:
            producer.commit_transaction(timeout_s)
        except KafkaException as exc:
            if exc.args and exc.args[0].txn_requires_abort():
                self._abort()
                raise KafkaUnavailable(f"Kafka refused the batch's commit: {_why(exc)}") from None
            # Timed out or fatal: the commit request may have reached the coordinator.
            self._discard()
            raise KafkaOutcomeUnknown(
                f"Kafka did not answer the batch's commit: {_why(exc)}"
            ) from None

    def _abort(self) -> None:
        """End the transaction without a commit; if Kafka does not confirm, replace the producer:
        its transaction was never asked to commit, and the replacement (same id) aborts it."""
        if self._producer is None:
            return
        try:
            self._producer.abort_transaction(ABORT_TIMEOUT_S)
        except KafkaException as exc:
            log.warning("transactional producer: abort not confirmed (%s); replacing it", _why(exc))
            self._discard()

    def _discard(self) -> None:
        broken, self._producer, self._fatal = self._producer, None, None
        if broken is not None:
            broken.purge(in_queue=True, in_flight=True, blocking=False)
            broken.poll(0)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(1.0)


def _why(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)
