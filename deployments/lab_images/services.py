"""The data services' images: Redis, FerretDB (the MongoDB stand-in) and Kafka, on Debian 12.

No registry is reachable, so neither redis:7.4, mongo:7.0 nor Strimzi's Kafka image can be had.
Each image here honours what deployments/k8s (or the lab overlay) expects of the one it replaces:
- redis: `redis-server` and `redis-cli` on the PATH (the args and probes of redis.yaml), and the
  official image's entrypoint behaviour (a flag first means redis-server; root drops to `redis`).
- ferretdb: FerretDB 1.24 on SQLite, the binary the local stack builds (.stack/bin/ferretdb),
  serving MongoDB's wire protocol on 27017 with SCRAM logins. No MongoDB server is obtainable
  here (not in Debian, not on PyPI, Maven or the Go proxy).
- kafka: the Kafka 4.x jars the local stack takes from Maven Central (.stack/kafka/libs) on
  Debian's openjdk-17-jre-headless, started by files/kafka-start.sh (KRaft, SCRAM listener).
"""

from __future__ import annotations

from deployments.lab_images.recipe import ImageSpec

FILES = "deployments/lab_images/files"

REDIS = ImageSpec(
    name="redis",
    ref="votes-lab.local/redis:7-bookworm",
    base="debian",
    recipe={
        "packages": ["redis-server", "redis-tools"],
        "copies": [[f"{FILES}/redis-entrypoint.sh", "/usr/local/bin/docker-entrypoint.sh"]],
        "steps": [["0:0", False, "mkdir -p /data && chown redis:redis /data"]],
        "config": {
            "workingdir": "/data",
            "entrypoint": ["/usr/local/bin/docker-entrypoint.sh"],
            "cmd": ["redis-server"],
            "port": "6379",
        },
    },
    inputs=(f"{FILES}/redis-entrypoint.sh",),
)

FERRETDB = ImageSpec(
    name="ferretdb",
    ref="votes-lab.local/ferretdb:1.24-sqlite",
    base="debian",
    recipe={
        "packages": [],
        "copies": [
            [".stack/bin/ferretdb", "/usr/local/bin/ferretdb"],
            [f"{FILES}/ferretdb-entrypoint.sh", "/usr/local/bin/ferretdb-entrypoint.sh"],
        ],
        "steps": [["0:0", False, "useradd --system --home-dir /data --no-create-home ferretdb"]],
        "config": {
            "workingdir": "/data",
            "entrypoint": ["/usr/local/bin/ferretdb-entrypoint.sh"],
            "cmd": [],
            "port": "27017",
        },
    },
    inputs=(".stack/bin/ferretdb", f"{FILES}/ferretdb-entrypoint.sh"),
)

KAFKA = ImageSpec(
    name="kafka",
    ref="votes-lab.local/kafka:4-kraft",
    base="debian",
    recipe={
        "packages": ["openjdk-17-jre-headless", "bash"],
        "copies": [
            [".stack/kafka/libs", "/opt/kafka/libs"],
            ["deployments/local/kafka/log4j2.properties", "/opt/kafka/config/log4j2.properties"],
            [f"{FILES}/kafka-start.sh", "/opt/kafka/bin/kafka-start.sh"],
        ],
        "steps": [
            [
                "0:0",
                False,
                (
                    "useradd --system --home-dir /var/lib/kafka --create-home kafka\n"
                    "rm -f /opt/kafka/libs/.pom.sha256"
                ),
            ]
        ],
        "config": {
            "workingdir": "/var/lib/kafka",
            "entrypoint": ["/opt/kafka/bin/kafka-start.sh"],
            "cmd": [],
            "port": "9094",
        },
    },
    inputs=(
        ".stack/kafka/libs",
        "deployments/local/kafka/log4j2.properties",
        f"{FILES}/kafka-start.sh",
    ),
)

# What is missing when an input of these images is: the local stack builds both.
STACK_HINT = (
    "the local stack builds it: `make stack-up` (then `make stack-down`), outside any netns"
)
