"""Every Kafka producer of the app (the ingress's, the batches' transactional ones, the pool's
dead-letter one) takes its reliability and login from one place, Settings.kafka_producer_config."""

from __future__ import annotations

from serve_app.ingress.batch_producer import transactional_config
from serve_app.ingress.producer import producer_config
from serve_app.pool.clients import dlq_producer_config
from serve_app.settings import load_settings

SASL_ENV = {
    "VOTES_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "VOTES_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "VOTES_KAFKA_SASL_USERNAME": "votes-app",
    "VOTES_KAFKA_SASL_PASSWORD": "pw",
}


def test_every_producer_shares_the_reliability_and_login_settings() -> None:
    for environ in ({}, SASL_ENV):
        settings = load_settings({"kafka_bootstrap_servers": "kafka:9094"}, environ)
        configs = {
            "votes-ingest": producer_config(settings),
            "votes-ingest-batches": transactional_config(settings, "votes-ingest-x-0"),
            "votes-dlq": dlq_producer_config(settings),
        }
        for client_id, config in configs.items():
            shared = settings.kafka_producer_config(client_id)
            assert shared["acks"] == "all" and shared["enable.idempotence"] is True
            assert {key: config[key] for key in shared} == shared, client_id
