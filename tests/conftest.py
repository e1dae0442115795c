"""Shared fixtures: the local stack (started by `make test`) and one Serve app per test session.

The app under test is deployed from the real config.yaml, as `serve run config.yaml` does, with
only what isolates it from a developer's own `make run`: other ports, its own Kafka topics and
consumer group, Redis database 1, and its own MongoDB database.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from pymongo import MongoClient

from deployments.local.stack import PARTS, Stack
from devkit.kafka import create_topics, delete_topics
from devkit.names import RunNames
from devkit.ray_start import init_local_ray
from devkit.serve import deploy_config
from devkit.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
# Overridable so that concurrent pytest sessions on one machine do not clash.
TEST_HTTP_PORT = int(os.environ.get("VOTES_TEST_HTTP_PORT", "18000"))
TEST_GRPC_PORT = int(os.environ.get("VOTES_TEST_GRPC_PORT", "19000"))
TEST_REDIS_DB = int(os.environ.get("VOTES_TEST_REDIS_DB", "1"))
# First of serve_env.PORT_BLOCK_SIZE ports for the replicas' direct ingress and HAProxy.
TEST_SERVE_PORTS = int(os.environ.get("VOTES_TEST_SERVE_PORTS", "32000"))
PARTITIONS = 6


_RAY_TOKEN_DIR = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """The session's Ray token, chosen before any test imports Ray (which reads RAY_AUTH_MODE
    once): a file of the session's own, never ~/.ray/auth_token."""
    from serve_app import serve_env

    token_dir = Path(tempfile.mkdtemp(prefix="votes-test-ray-"))
    config.stash[_RAY_TOKEN_DIR] = token_dir
    os.environ.update(serve_env.auth_settings(os.environ, token_dir / "auth_token"))


def pytest_unconfigure(config: pytest.Config) -> None:
    token_dir = config.stash.get(_RAY_TOKEN_DIR, None)
    if token_dir is not None:
        shutil.rmtree(token_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The running local stack; fails (never skips) when it is not up."""
    running = Stack()
    unhealthy = [part for part in PARTS if not running.is_healthy(part)]
    if unhealthy:
        pytest.fail(f"local stack not healthy ({', '.join(unhealthy)}): run `make stack-up`")
    return running


@pytest.fixture(scope="session")
def names() -> RunNames:
    """Per-session names that keep tests away from a developer's data."""
    return RunNames("test")


@pytest.fixture(scope="session")
def redis_proxy(stack: Any) -> Iterator[Any]:
    """The app reaches Redis through this proxy, so a chaos test can make Redis slow."""
    from devkit.latency_proxy import LatencyProxy

    proxy = LatencyProxy(6379).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def app_args(stack: Any, names: RunNames, redis_proxy: Any) -> dict[str, Any]:
    """config.yaml's args, pointed at this session's topics, group and databases."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    return config["applications"][0]["args"] | {
        "kafka_topic": names.topic,
        "kafka_dlq_topic": names.dlq_topic,
        "kafka_consumer_group": names.group,
        "redis_url": f"redis://127.0.0.1:{redis_proxy.port}/{TEST_REDIS_DB}",
        "mongo_database": names.mongo_database,
    }


@pytest.fixture(scope="session")
def topics(stack: Any, names: RunNames) -> Iterator[None]:
    create_topics([names.topic], partitions=PARTITIONS)
    create_topics([names.dlq_topic], partitions=1)
    yield
    delete_topics([names.topic, names.dlq_topic])


@pytest.fixture(scope="session")
def redis_client(stack: Any) -> Iterator[redis.Redis]:
    client = redis.Redis(port=6379, db=TEST_REDIS_DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def mongo_db(stack: Any, names: RunNames) -> Iterator[Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(
        "mongodb://127.0.0.1:27017/", serverSelectionTimeoutMS=5000
    )
    yield client[names.mongo_database]
    client.drop_database(names.mongo_database)
    client.close()


@dataclass
class Pipeline:
    """The deployed app: where to reach it and where its data lands."""

    http: httpx.Client
    grpc_target: str
    names: RunNames
    args: dict[str, Any]

    def results(self) -> dict[str, Any]:
        response = self.http.get("/results")
        response.raise_for_status()
        return response.json()


# Serve's controller gives a starting proxy 5 s to answer its ready check, then kills it; on two
# busy cores a proxy's worker process takes longer to start, and serve_start then fails the
# session with the killed actor's ActorDiedError (seen in `make chaos` beside a fresh-clone run).
BUSY_MACHINE_ENV = {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60"}


@pytest.fixture(scope="session")
def pipeline(
    app_args: dict[str, Any],
    topics: None,
    redis_client: redis.Redis,
    mongo_db: Any,
    names: RunNames,
) -> Iterator[Pipeline]:
    """One Ray instance and one deployment of config.yaml for the whole session."""
    import ray
    from ray import serve

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["http_options"]["port"] = TEST_HTTP_PORT
    config["grpc_options"]["port"] = TEST_GRPC_PORT
    config["applications"][0]["args"] = app_args

    from serve_app import serve_env

    # Ray's processes inherit this environment: Serve runs as `make run` runs it, with its
    # HAProxy files and direct-ingress ports apart from any `make run` on the same machine.
    haproxy_dir = Path(tempfile.mkdtemp(prefix="votes-test-", dir="/tmp"))
    private = serve_env.private_instance(haproxy_dir, TEST_SERVE_PORTS)
    serve_env.apply(os.environ, serve_env.SERVE_ENV | private | BUSY_MACHINE_ENV)
    init_local_ray(num_cpus=2, include_dashboard=False, namespace="serve", log_to_driver=False)
    deploy_config(config)

    def app_running() -> bool:
        app = serve.status().applications.get("votes")
        if app is not None and app.status == "DEPLOY_FAILED":
            pytest.fail(f"the app failed to deploy: {app.message}")
        return app is not None and app.status == "RUNNING"

    try:
        wait_until(app_running, 180, "the votes app to be RUNNING", every_s=1)
        http = httpx.Client(base_url=f"http://127.0.0.1:{TEST_HTTP_PORT}", timeout=30)
        wait_until(lambda: http.get("/healthz").status_code == 200, 60, "/healthz to be 200")
        yield Pipeline(http, f"127.0.0.1:{TEST_GRPC_PORT}", names, app_args)
        http.close()
    finally:
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(haproxy_dir, ignore_errors=True)
