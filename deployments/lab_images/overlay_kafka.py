"""The lab's Kafka in Strimzi's place: what deployments/k8s/kafka asks of the operator, by hand.

Strimzi's operator cannot be had here (no registry), so the lab runs one KRaft node of its own
image (lab_images/services.py, files/kafka-start.sh) as a StatefulSet, with what the application
reads from Strimzi's output unchanged:
- the bootstrap Service `<cluster>-kafka-bootstrap` on the `scram` listener's port (9094),
  SASL_PLAINTEXT with SCRAM-SHA-512 (the ConfigMap votes-config and the RayService say so);
- the KafkaUser's Secret, named like the user (`votes-app`), key `password`;
- the topics and ACLs of topics.yaml and users.yaml, made by a Job (deployments/k8s-lab/overlay/
  kafka-setup.py, as Strimzi's topic and user operators would) with one replica each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from deployments import manifests
from deployments.lab_images import base, services

SETUP_CONFIGMAP = "votes-kafka-setup"
SETUP_FILES = ("kafka-setup.py", "kafka-setup.json")
ADMIN_SECRET = "votes-kafka-admin"
# Secret name -> the overlay's env file that fills it (key `password`, Strimzi's shape).
SECRET_ENV_FILES = {"votes-app": "kafka-user.env", ADMIN_SECRET: "kafka-admin.env"}
SECRET_EXAMPLES = {
    "kafka-user.env": "password=change-me-kafka-user-password\n",
    "kafka-admin.env": "password=change-me-kafka-admin-password\n",
}
KAFKA = {"requests": {"cpu": "100m", "memory": "768Mi"}, "limits": {"memory": "768Mi"}}
SETUP_JOB = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}}


def _load(kafka_dir: Path, name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((kafka_dir / name).read_text()) if doc]


def cluster_name(kafka_dir: Path) -> str:
    (kafka,) = [doc for doc in _load(kafka_dir, "kafka.yaml") if doc["kind"] == "Kafka"]
    return str(kafka["metadata"]["name"])


def scram_port(kafka_dir: Path) -> int:
    (kafka,) = [doc for doc in _load(kafka_dir, "kafka.yaml") if doc["kind"] == "Kafka"]
    (listener,) = [item for item in kafka["spec"]["kafka"]["listeners"] if item["name"] == "scram"]
    return int(listener["port"])


def user_name(kafka_dir: Path) -> str:
    (user,) = _load(kafka_dir, "users.yaml")
    return str(user["metadata"]["name"])


def setup_json(kafka_dir: Path) -> str:
    """The topics (one replica, min.insync.replicas 1: one broker) and the user's ACLs."""
    topics = []
    for topic in _load(kafka_dir, "topics.yaml"):
        config = {key: str(value) for key, value in (topic["spec"].get("config") or {}).items()}
        config["min.insync.replicas"] = "1"
        topics.append(
            {
                "name": topic["metadata"]["name"],
                "partitions": topic["spec"]["partitions"],
                "config": config,
            }
        )
    (user,) = _load(kafka_dir, "users.yaml")
    acls = [
        {
            "resource_type": acl["resource"]["type"],
            "name": acl["resource"]["name"],
            "pattern_type": acl["resource"]["patternType"],
            "operations": acl["operations"],
        }
        for acl in user["spec"]["authorization"]["acls"]
    ]
    spec = {
        "user": user["metadata"]["name"],
        "replication_factor": 1,
        "topics": topics,
        "acls": acls,
    }
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"


# The uid the lab's Kafka runs as: Strimzi's image's (kafka.yaml's brokers run as it too).
KAFKA_UID = 1001


def _secret_env(name: str, secret: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}


def kafka_docs(kafka_dir: Path, namespace: str) -> list[dict[str, Any]]:
    cluster = cluster_name(kafka_dir)
    port = scram_port(kafka_dir)
    user = user_name(kafka_dir)
    # Strimzi's labels, which the NetworkPolicy votes-kafka selects the brokers by.
    labels = {
        "app.kubernetes.io/name": "votes",
        "app.kubernetes.io/component": "kafka",
        "strimzi.io/cluster": cluster,
        "strimzi.io/name": f"{cluster}-kafka",
    }
    setup_labels = {"app.kubernetes.io/name": "votes", "app.kubernetes.io/component": "kafka-setup"}
    meta = {"namespace": namespace, "labels": dict(labels)}
    bootstrap = f"{cluster}-kafka-bootstrap"
    scram = [{"name": "tcp-scram", "port": port, "targetPort": "scram"}]
    probe = {"tcpSocket": {"port": "scram"}, "periodSeconds": 10, "timeoutSeconds": 3}
    container = {
        "name": "kafka",
        "image": services.KAFKA.ref,
        "imagePullPolicy": "Never",
        "securityContext": manifests.restricted_container(),
        "env": [
            {
                "name": "KAFKA_ADVERTISED_HOST",
                "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
            },
            {"name": "KAFKA_USER_NAME", "value": user},
            _secret_env("KAFKA_USER_PASSWORD", user),
            _secret_env("KAFKA_ADMIN_PASSWORD", ADMIN_SECRET),
        ],
        "ports": [{"name": "scram", "containerPort": port}],
        "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 60},
        "readinessProbe": probe,
        "livenessProbe": {**probe, "periodSeconds": 20, "failureThreshold": 6},
        "resources": KAFKA,
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/kafka"}],
    }
    setup = {
        "name": "kafka-setup",
        "image": base.VOTES.ref,
        "imagePullPolicy": "Never",
        "securityContext": manifests.restricted_container(),
        "command": ["python", "/setup/kafka-setup.py", "/setup/kafka-setup.json"],
        "env": [
            {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": f"{bootstrap}:{port}"},
            _secret_env("KAFKA_ADMIN_PASSWORD", ADMIN_SECRET),
        ],
        "resources": SETUP_JOB,
        "volumeMounts": [{"name": "setup", "mountPath": "/setup", "readOnly": True}],
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": bootstrap, **meta},
            "spec": {"selector": labels, "ports": scram},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{cluster}-kafka-brokers", **meta},
            "spec": {"clusterIP": "None", "selector": labels, "ports": scram},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": f"{cluster}-kafka", **meta},
            "spec": {
                "serviceName": f"{cluster}-kafka-brokers",
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        # The namespace's `restricted` profile: Strimzi's uid, 1001 (the
                        # image's entrypoint runs Kafka as whoever starts it, root aside).
                        "securityContext": manifests.restricted_pod(KAFKA_UID, KAFKA_UID),
                        "terminationGracePeriodSeconds": 60,
                        "containers": [container],
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "2Gi"}},
                        },
                    }
                ],
            },
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": SETUP_CONFIGMAP, "namespace": namespace, "labels": setup_labels},
            "spec": {
                "backoffLimit": 10,
                "template": {
                    "metadata": {"labels": setup_labels},
                    "spec": {
                        "securityContext": manifests.restricted_pod(
                            manifests.RAY_UID, manifests.RAY_GID
                        ),
                        "restartPolicy": "OnFailure",
                        "containers": [setup],
                        "volumes": [{"name": "setup", "configMap": {"name": SETUP_CONFIGMAP}}],
                    },
                },
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": SETUP_CONFIGMAP, "namespace": namespace, "labels": setup_labels},
            "spec": {
                "podSelector": {"matchLabels": {"strimzi.io/cluster": cluster}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [{"podSelector": {"matchLabels": setup_labels}}],
                        "ports": [{"port": port, "protocol": "TCP"}],
                    }
                ],
            },
        },
        {
            # The setup Job's way out (the namespace denies egress): the SCRAM listener.
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": f"{SETUP_CONFIGMAP}-egress",
                "namespace": namespace,
                "labels": setup_labels,
            },
            "spec": {
                "podSelector": {"matchLabels": setup_labels},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"podSelector": {"matchLabels": labels}}],
                        "ports": [{"port": port, "protocol": "TCP"}],
                    }
                ],
            },
        },
    ]
