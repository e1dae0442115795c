"""The lab's stand-in for Strimzi's topic and user operators (deployments/k8s-lab/overlay).

Run by the Job votes-kafka-setup in the votes image (confluent_kafka is there). Logs into the
lab's Kafka as its super user `admin` and makes what kafka-setup.json says (generated from
deployments/k8s/kafka/topics.yaml and users.yaml): the topics, and the ACLs of the application's
user, whose SCRAM credentials the broker got when its storage was formatted. Idempotent: a topic
or ACL that exists is left alone, so the Job can run again.

    python kafka-setup.py kafka-setup.json   # env: KAFKA_BOOTSTRAP_SERVERS, KAFKA_ADMIN_PASSWORD
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

BROKER_WAIT_S = 600.0
ACLS_WAIT_S = 60.0


def admin_client() -> AdminClient:
    return AdminClient(
        {
            "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "admin",
            "sasl.password": os.environ["KAFKA_ADMIN_PASSWORD"],
        }
    )


def wait_for_broker(admin: AdminClient) -> None:
    deadline = time.monotonic() + BROKER_WAIT_S
    while True:
        try:
            admin.list_topics(timeout=10)
            return
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"kafka-setup: no broker within {BROKER_WAIT_S:.0f}s: {exc}"
                ) from exc
            print(f"kafka-setup: waiting for the broker: {exc}", flush=True)
            time.sleep(2)


def create_topics(admin: AdminClient, spec: dict[str, Any]) -> None:
    existing = admin.list_topics(timeout=10).topics
    wanted = [
        NewTopic(t["name"], t["partitions"], spec["replication_factor"], config=t["config"])
        for t in spec["topics"]
        if t["name"] not in existing
    ]
    for name, future in (admin.create_topics(wanted) if wanted else {}).items():
        future.result()
        print(f"kafka-setup: created topic {name}", flush=True)
    for topic in spec["topics"]:
        if topic["name"] in existing:
            print(f"kafka-setup: topic {topic['name']} exists", flush=True)


# Strimzi's spellings (users.yaml) where they differ from confluent_kafka's enum names.
STRIMZI_RESOURCE_TYPES = {"cluster": ResourceType.BROKER}
STRIMZI_PATTERN_TYPES = {"prefix": ResourcePatternType.PREFIXED}


def enum_name(strimzi: str) -> str:
    """Strimzi's camelCase to an enum member's name: transactionalId -> TRANSACTIONAL_ID."""
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(strimzi)).upper()


def acl_bindings(spec: dict[str, Any]) -> list[AclBinding]:
    """One ALLOW binding per operation of every ACL of the application's user."""
    return [
        AclBinding(
            STRIMZI_RESOURCE_TYPES.get(acl["resource_type"])
            or ResourceType[enum_name(acl["resource_type"])],
            acl["name"],
            STRIMZI_PATTERN_TYPES.get(acl["pattern_type"])
            or ResourcePatternType[enum_name(acl["pattern_type"])],
            f"User:{spec['user']}",
            "*",
            AclOperation[enum_name(operation)],
            AclPermissionType.ALLOW,
        )
        for acl in spec["acls"]
        for operation in acl["operations"]
    ]


def create_acls(admin: AdminClient, spec: dict[str, Any]) -> None:
    bindings = acl_bindings(spec)
    for binding, future in admin.create_acls(bindings).items():
        future.result()
        print(f"kafka-setup: ACL {binding}", flush=True)
    wait_for_acls(admin, f"User:{spec['user']}", len(bindings))


def wait_for_acls(admin: AdminClient, principal: str, count: int) -> None:
    """Done means usable: the broker's authorizer applies new ACLs a moment after they are made
    (a produce right after the setup was once refused), so wait until it lists them all."""
    every = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        principal,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    deadline = time.monotonic() + ACLS_WAIT_S
    while len(admin.describe_acls(every).result()) < count:
        if time.monotonic() > deadline:
            raise SystemExit(
                f"kafka-setup: the broker lists fewer than {count} ACLs of {principal}"
            )
        time.sleep(0.5)
    print(f"kafka-setup: the broker applies all {count} ACLs of {principal}", flush=True)


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    admin = admin_client()
    wait_for_broker(admin)
    create_topics(admin, spec)
    create_acls(admin, spec)
    print("kafka-setup: done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
