"""Kafka producer with awaitable delivery: a request is answered only after Kafka's ack.

confluent-kafka calls delivery reports from `poll()`. One daemon thread per producer polls and hands
the settled requests back to the event loop that is awaiting them, so the event loop never blocks
on Kafka: all the requests one `poll()` settled in a single wake-up of the loop.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from serve_app.domain.votes import VoteRecord, encode_record
from serve_app.ingress.admission import YIELD_EVERY_RECORDS
from serve_app.kafka_errors import ReplaceableProducer
from serve_app.settings import Settings

# Under "ray.serve": Serve writes these to the replica logs shown in the Ray dashboard.
log = logging.getLogger("ray.serve").getChild(__name__)


class KafkaUnavailable(RuntimeError):
    """Kafka did not acknowledge in time or refused the record: answer 503 / UNAVAILABLE."""


class KafkaOverloaded(RuntimeError):
    """The producer's local queue is full: answer 503 / RESOURCE_EXHAUSTED."""


def producer_config(settings: Settings) -> dict[str, Any]:
    timeout_ms = int(settings.kafka_delivery_timeout_s * 1000)
    return settings.kafka_producer_config("votes-ingest") | {
        # Bounds how long a record may wait for an ack (Kafka down -> delivery error -> 503).
        "message.timeout.ms": timeout_ms,
        "request.timeout.ms": min(timeout_ms, 30_000),
        "linger.ms": settings.kafka_linger_ms,
        "compression.type": "lz4",
        "queue.buffering.max.messages": settings.kafka_producer_queue_max,
    }


class VoteProducer:
    """Produces vote records and awaits their delivery reports."""

    def __init__(
        self, settings: Settings, new_producer: Callable[[dict[str, Any]], Producer] = Producer
    ) -> None:
        self._topic = settings.kafka_topic
        self._queue_max = settings.kafka_producer_queue_max
        # Slack over the producer's own message timeout: its delivery error is the better answer.
        self._await_timeout_s = settings.kafka_delivery_timeout_s + 1.0
        self._producers = ReplaceableProducer("producer", producer_config(settings), new_producer)
        self._settlements = _Settlements()
        self._closing = threading.Event()
        self._poller = threading.Thread(
            target=self._poll_loop, name="kafka-delivery-reports", daemon=True
        )
        self._poller.start()

    def _poll_loop(self) -> None:
        _name_os_thread("kafka-poller")
        while not self._closing.is_set():
            try:
                self._producer.poll(0.05)
            except KafkaException as exc:
                # poll() raises a fatal error (seen: cluster authorization refused before the
                # ACLs existed) without error_cb: note it so the next send replaces the producer.
                self._note_fatal(exc)
                self._closing.wait(0.05)
            self._settlements.hand_over()

    def _note_fatal(self, exc: KafkaException) -> None:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and self._producers.fatal is None:
            self._producers.on_error(error)

    @property
    def _producer(self) -> Producer:
        return self._producers.producer

    def _replace_after_fatal_error(self) -> None:
        broken = self._producers.replace_if_fatal()
        if broken is None:
            return
        # Fail what the broken producer still holds: its delivery reports answer 503 now.
        broken.purge(in_queue=True, in_flight=True, blocking=False)
        try:
            broken.poll(0)
        except KafkaException:
            pass  # its fatal error again: the purged reports are what mattered
        self._settlements.hand_over()

    async def send(self, records: Sequence[VoteRecord]) -> None:
        """Produce the records and return once Kafka acknowledged every one of them.

        Raises KafkaOverloaded before producing anything when the local queue cannot take the
        whole batch, and KafkaUnavailable when any record was not acknowledged in time. Records
        of a failed batch may still have reached Kafka: clients retry with the same vote_ids.
        """
        if self._producers.fatal is not None:
            self._replace_after_fatal_error()
        producer = self._producer
        if len(producer) + len(records) > self._queue_max:
            raise KafkaOverloaded(
                f"producer queue full ({len(producer)} records waiting for Kafka)"
            )
        if not records:
            return
        loop = asyncio.get_running_loop()
        # One future per call, settled by the last acknowledgement or the first error, not one
        # per record (bench.tools.hotpath); the poller settles a poll's calls together
        # (_Settlements).
        all_delivered: asyncio.Future[None] = loop.create_future()
        on_delivery = _DeliveryReport(loop, all_delivered, len(records), self._settlements)
        for produced, record in enumerate(records):
            if produced and produced % YIELD_EVERY_RECORDS == 0:
                await asyncio.sleep(0)
            message = encode_record(record)
            try:
                producer.produce(
                    self._topic,
                    key=message.key,
                    value=message.value,
                    headers=message.headers,
                    on_delivery=on_delivery,
                )
            except (BufferError, KafkaException) as exc:
                # Records produced before this one still get their reports: settling a
                # cancelled future is a no-op.
                all_delivered.cancel()
                if isinstance(exc, BufferError):
                    raise KafkaOverloaded(f"producer queue full: {exc}") from None
                raise KafkaUnavailable(
                    f"Kafka refused record {produced + 1} of {len(records)}: {exc}"
                ) from None
        try:
            async with asyncio.timeout(self._await_timeout_s):
                await all_delivered
        except TimeoutError:
            raise KafkaUnavailable(
                f"no acknowledgement from Kafka within {self._await_timeout_s:.0f}s"
            ) from None

    def health(self, timeout_s: float = 2.0) -> str | None:
        """None when the cluster answers a metadata request for our topic, else why not."""
        try:
            metadata = self._producer.list_topics(self._topic, timeout=timeout_s)
        except KafkaException as exc:
            return f"unreachable: {exc.args[0].str() if exc.args else exc}"
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None:
            reason = topic.error.str() if topic is not None and topic.error else "missing"
            return f"topic {self._topic!r}: {reason}"
        return None

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (bounded), then stop the poller."""
        remaining = self._producer.flush(timeout_s)
        self._settlements.hand_over()
        if remaining:
            log.warning("kafka producer closed with %d undelivered records", remaining)
        self._closing.set()
        self._poller.join(timeout=1.0)


def _name_os_thread(name: str) -> None:
    """Name the calling thread for the OS (Linux; Python 3.11 does not), so that per-thread CPU
    (top -H, /proc, bench.tools.ingress_cost) shows it apart from the event loop's thread."""
    try:
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # 15: PR_SET_NAME
    except (OSError, AttributeError):  # not Linux
        pass


class _Settlements:
    """Requests settled during one `poll()`, handed to each event loop in one wake-up.

    A wake-up (`call_soon_threadsafe`) writes to the loop's self-pipe and hands the GIL over;
    one per request was ~5% of the ingress replica's profile, and Kafka acknowledges many
    records at once, so one `poll()` can settle several requests
    (docs/decisions/0019-one-wake-up-per-poll.md). Locked: a fatal-error replacement and
    `close()` serve reports on another thread than the poller.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[asyncio.AbstractEventLoop, list[Callable[[], None]]] = {}

    def add(self, loop: asyncio.AbstractEventLoop, settle: Callable[[], None]) -> None:
        with self._lock:
            self._pending.setdefault(loop, []).append(settle)

    def hand_over(self) -> None:
        with self._lock:
            if not self._pending:
                return
            pending, self._pending = self._pending, {}
        for loop, settles in pending.items():
            try:
                loop.call_soon_threadsafe(_settle_all, settles)
            except RuntimeError:  # the loop is closed: the replica is shutting down
                pass


def _settle_all(settles: list[Callable[[], None]]) -> None:
    for settle in settles:
        settle()


class _DeliveryReport:
    """A confluent-kafka delivery callback for one call's records.

    Runs on the thread that polls. Settles `delivered` on its event loop (through
    `settlements`, handed over after the poll) once `expected` records were acknowledged, or
    fails it at the first error: the request fails as a whole.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        delivered: asyncio.Future[None],
        expected: int,
        settlements: _Settlements,
    ) -> None:
        self._loop = loop
        self._delivered = delivered
        self._outstanding = expected
        self._settlements = settlements
        self._settled = False  # only touched on the polling thread

    def __call__(self, error: KafkaError | None, _message: Message) -> None:
        if self._settled:
            return
        if error is not None:
            self._settled = True
            failure = KafkaUnavailable(f"Kafka did not take the record: {error.str()}")
            self._settlements.add(self._loop, lambda: self._settle_error(failure))
            return
        self._outstanding -= 1
        if self._outstanding == 0:
            self._settled = True
            self._settlements.add(self._loop, self._settle_ok)

    def _settle_ok(self) -> None:
        if not self._delivered.done():  # the request may have given up (timeout, client gone)
            self._delivered.set_result(None)

    def _settle_error(self, failure: KafkaUnavailable) -> None:
        if not self._delivered.done():
            self._delivered.set_exception(failure)
