"""Checks of the local dev stack (deployments/local/stack/) against the running processes.

These tests do not start anything: run `make stack-up` (.venv/bin/python -m deployments.local.stack
up) first. If the stack is down they fail, on purpose, instead of skipping: in CI a skipped
integration suite looks green while it checked nothing.
"""

import io
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
import redis
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from deployments.local.stack import PARTS, Stack

pytestmark = pytest.mark.integration

PROBE_DATABASE = "stack_integration_test"


@pytest.fixture(scope="module")
def local_stack() -> Stack:
    """The Stack (configured from VOTES_* like the command line), failing fast if a part is down."""
    stack = Stack(out=io.StringIO())
    unhealthy = [part for part in PARTS if not stack.is_healthy(part)]
    if unhealthy:
        pytest.fail(
            f"the local stack is not up ({', '.join(unhealthy)} not healthy under "
            f"{stack.root}): run `make stack-up` "
            "(or .venv/bin/python -m deployments.local.stack up) and retry",
            pytrace=False,
        )
    return stack


@pytest.fixture(scope="module")
def kafka_admin(local_stack: Stack) -> AdminClient:
    return AdminClient({"bootstrap.servers": local_stack.config.kafka_bootstrap})


@pytest.fixture(scope="module")
def mongo(local_stack: Stack) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        "127.0.0.1",
        local_stack.config.mongo_port,
        directConnection=True,
        serverSelectionTimeoutMS=5000,
    )
    yield client
    client.drop_database(PROBE_DATABASE)
    client.close()


def test_status_reports_every_part_running_and_healthy(local_stack: Stack) -> None:
    statuses = local_stack.status()
    assert [s.part for s in statuses] == ["redis", "ferretdb", "kafka"]
    for status in statuses:
        assert status.running and status.healthy, status.line()


def test_kafka_topics_exist_with_expected_partitions(
    local_stack: Stack, kafka_admin: AdminClient
) -> None:
    config = local_stack.config
    topics = kafka_admin.list_topics(timeout=10).topics
    expected = {config.kafka_topic: config.kafka_partitions, config.kafka_dlq_topic: 1}
    for name, partitions in expected.items():
        assert name in topics, f"topic {name!r} missing; topics: {sorted(topics)}"
        metadata = topics[name]
        assert metadata.error is None, metadata.error
        assert len(metadata.partitions) == partitions, name
        for partition in metadata.partitions.values():
            assert partition.replicas == [1], (name, partition.id, partition.replicas)


def test_kafka_broker_does_not_auto_create_topics(kafka_admin: AdminClient) -> None:
    resource = ConfigResource(ResourceType.BROKER, "1")
    configs = kafka_admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["auto.create.topics.enable"].value == "false"
    assert configs["min.insync.replicas"].value == "1"
    assert configs["offsets.topic.replication.factor"].value == "1"


def test_redis_is_durable(local_stack: Stack) -> None:
    client = redis.Redis(host="127.0.0.1", port=local_stack.config.redis_port, socket_timeout=5)
    try:
        assert client.ping()
        # Counters are committed before Kafka offsets: every acknowledged write must be fsynced.
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
    finally:
        client.close()


def test_ferretdb_answers_ping_insert_and_find(mongo: pymongo.MongoClient[dict[str, Any]]) -> None:
    assert mongo.admin.command("ping")["ok"] == 1
    collection = mongo[PROBE_DATABASE]["probe"]
    marker = uuid.uuid4().hex
    inserted = collection.insert_one({"marker": marker, "votes": 3})
    found = collection.find_one({"marker": marker})
    assert found is not None
    assert found["_id"] == inserted.inserted_id
    assert found["votes"] == 3
