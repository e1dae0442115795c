"""The producer's own logic that needs no broker: its config and recovery from a fatal error."""

from __future__ import annotations

import asyncio

from confluent_kafka import KafkaError

from serve_app.producer import VoteProducer, producer_config
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
