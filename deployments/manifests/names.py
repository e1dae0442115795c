"""The names and in-cluster addresses the generated RayService shares with deployments/k8s.

Each name here is also spelled in a hand-written manifest of deployments/k8s (a Secret, a Service,
a KafkaUser); tests/unit/deployments/k8s checks that the two agree.
"""

from __future__ import annotations

IMAGE_REPOSITORY = "ghcr.io/votes-contest/votes"
RAYSERVICE_NAME = "votes"
APP_LABELS = {"app.kubernetes.io/name": "votes", "app.kubernetes.io/part-of": "votes"}
# The Ray pod templates carry only labels KubeRay does not set: KubeRay's head Services select on
# its own `app.kubernetes.io/name: kuberay`, and a template value would override it on the pod
# (tests/unit/deployments/k8s/test_kuberay_labels.py).
RAY_POD_LABELS = {"app.kubernetes.io/part-of": "votes"}
CONFIG_MAP = "votes-config"
SECRET = "votes-secrets"
# The keys of the Secret the Ray containers read. The URLs are secrets because they carry
# passwords. Only these keys are passed (not the whole Secret): Redis/MongoDB/Grafana passwords
# stay out of Ray.
SECRET_ENV_KEYS = ("VOTES_WRITE_TOKEN", "VOTES_REDIS_URL", "VOTES_MONGO_URL")
# The Ray token has a Secret of its own (deployments/k8s/ray-token/secrets.env): KubeRay's operator
# reads it (authOptions.secretName), and the operator has no business reading votes-secrets.
RAY_TOKEN_SECRET = "votes-ray-token"
RAY_AUTH_TOKEN_KEY = "auth_token"
# Kafka: the Strimzi KafkaUser `votes-app` (SCRAM-SHA-512) on the listener `scram`. Strimzi writes
# the user's password into a Secret of the user's name, key `password`.
KAFKA_USER = "votes-app"
KAFKA_USER_SECRET = "votes-app"
KAFKA_USER_PASSWORD_KEY = "password"
KAFKA_SCRAM_BOOTSTRAP = "votes-kafka-bootstrap:9094"
KAFKA_ENV = {
    "VOTES_KAFKA_BOOTSTRAP_SERVERS": KAFKA_SCRAM_BOOTSTRAP,
    "VOTES_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "VOTES_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "VOTES_KAFKA_SASL_USERNAME": KAFKA_USER,
}
# GCS fault tolerance: the Ray head keeps the cluster's metadata in votes-redis, as the Redis ACL
# user `ray-gcs` (its password: key REDIS_GCS_PASSWORD of votes-secrets, read by KubeRay for the
# head container only). No externalStorageNamespace: KubeRay then uses the RayCluster's UID, so
# the new cluster of an upgrade never reads the old one's state (KubeRay's GCS FT guide).
GCS_REDIS_ADDRESS = "votes-redis:6379"
GCS_REDIS_USER = "ray-gcs"
GCS_REDIS_PASSWORD_KEY = "REDIS_GCS_PASSWORD"
# KubeRay 1.6+ puts every head-container port named `serve` or `serve-*` on <name>-serve-svc.
SERVE_PORT_NAME = "serve"
SERVE_GRPC_PORT_NAME = "serve-grpc"
# In-cluster addresses (short names: they resolve inside whatever namespace the stack runs in).
GRAFANA_URL = "http://votes-grafana:3000"
PROMETHEUS_URL = "http://votes-prometheus:9090"
# What the *browser* uses to load Grafana panels inside the Ray dashboard; see docs/kubernetes.md.
GRAFANA_IFRAME_URL = "http://127.0.0.1:3000"

WORKER_GROUP = "workers"
