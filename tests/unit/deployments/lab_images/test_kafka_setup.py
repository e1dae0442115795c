"""The lab's Kafka setup script (deployments/k8s-lab/overlay/kafka-setup.py): its ACL bindings.

Its spec carries Strimzi's spellings (users.yaml): `transactionalId`, `prefix`, `IdempotentWrite`.
The Job on the real node once failed on them (KeyError: 'TRANSACTIONALID') and left the app's
user without ACLs, so every vote got 503.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType

OVERLAY = Path(__file__).resolve().parents[4] / "deployments" / "k8s-lab" / "overlay"


def kafka_setup() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kafka_setup", OVERLAY / "kafka-setup.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_acl_of_the_generated_spec_becomes_bindings() -> None:
    spec = json.loads((OVERLAY / "kafka-setup.json").read_text())
    bindings = kafka_setup().acl_bindings(spec)
    assert len(bindings) == sum(len(acl["operations"]) for acl in spec["acls"])
    assert {b.principal for b in bindings} == {f"User:{spec['user']}"}


def test_strimzi_spellings_map_to_confluent_kafka_enums() -> None:
    spec = {
        "user": "votes-app",
        "acls": [
            {
                "name": "votes-ingest-",
                "operations": ["Describe", "Write"],
                "pattern_type": "prefix",
                "resource_type": "transactionalId",
            },
            {
                "name": "kafka-cluster",
                "operations": ["IdempotentWrite"],
                "pattern_type": "literal",
                "resource_type": "cluster",
            },
        ],
    }
    got = {
        (b.restype, b.name, b.resource_pattern_type, b.operation)
        for b in kafka_setup().acl_bindings(spec)
    }
    assert got == {
        (
            ResourceType.TRANSACTIONAL_ID,
            "votes-ingest-",
            ResourcePatternType.PREFIXED,
            AclOperation.DESCRIBE,
        ),
        (
            ResourceType.TRANSACTIONAL_ID,
            "votes-ingest-",
            ResourcePatternType.PREFIXED,
            AclOperation.WRITE,
        ),
        (
            ResourceType.BROKER,
            "kafka-cluster",
            ResourcePatternType.LITERAL,
            AclOperation.IDEMPOTENT_WRITE,
        ),
    }
