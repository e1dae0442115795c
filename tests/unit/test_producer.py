"""The producer's own logic that needs no broker: its config and recovery from a fatal error."""

from __future__ import annotations

import asyncio

from confluent_kafka import KafkaError

from serve_app.producer import KafkaUnavailable, VoteProducer, _DeliveryReport, producer_config
from serve_app.settings import Settings

# Nothing listens here: these tests never reach a broker.
SETTINGS = Settings(kafka_bootstrap_servers="127.0.0.1:1", kafka_delivery_timeout_s=2.0)


def test_config_makes_accepted_mean_durable() -> None:
    config = producer_config(SETTINGS)
    assert config["acks"] == "all" and config["enable.idempotence"] is True
    assert config["message.timeout.ms"] == 2000


def test_a_fatal_error_replaces_the_producer_before_the_next_send() -> None:
    producer = VoteProducer(SETTINGS)
    try:
        first = producer._producer
        producer._on_client_error(KafkaError(KafkaError._FATAL, "sequence gap", fatal=True))
        asyncio.run(producer.send([]))
        assert producer._producer is not first
        replaced = producer._producer
        producer._on_client_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "down"))
        asyncio.run(producer.send([]))
        assert producer._producer is replaced  # a non-fatal error changes nothing
    finally:
        producer.close(timeout_s=0.1)


def _report_outcome(reports: list[KafkaError | None], expected: int) -> str:
    """Feed delivery reports from another thread, as the poller does; say how the call ended."""

    async def run() -> str:
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()
        callback = _DeliveryReport(loop, delivered, expected)
        await asyncio.to_thread(lambda: [callback(error, None) for error in reports])  # type: ignore[arg-type]
        try:
            async with asyncio.timeout(0.5):
                await delivered
        except TimeoutError:
            return "waiting"
        except KafkaUnavailable as exc:
            return f"failed: {exc}"
        return "delivered"

    return asyncio.run(run())


def test_a_call_is_delivered_only_when_its_last_record_is() -> None:
    assert _report_outcome([None, None], expected=3) == "waiting"
    assert _report_outcome([None, None, None], expected=3) == "delivered"


def test_one_failed_record_fails_the_whole_call() -> None:
    timed_out = KafkaError(KafkaError._MSG_TIMED_OUT, "Message timed out")
    outcome = _report_outcome([None, timed_out, None], expected=3)
    assert outcome.startswith("failed:") and "timed out" in outcome
