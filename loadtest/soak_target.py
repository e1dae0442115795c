"""The system the soak loads: our own `serve run` (what `make run` ships) or an app at --host,
where its votes go (topics, group, Redis, MongoDB) and the Ray session Prometheus scrapes."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from loadtest.prometheus import (
    PrometheusError,
    service_discovery_file,
    session_dir_of_listener,
    session_dir_of_session,
)
from loadtest.soak_log import log

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Target:
    """Where the votes go and where they end up."""

    http_url: str
    grpc_target: str
    topic: str
    dlq_topic: str
    group: str
    redis_url: str
    mongo_url: str
    mongo_database: str
    own: bool
    serve_session: int | None = None  # Unix session of our `serve run` (own instance)
    ray_session_dir: Path | None = None


def app_args(config_path: Path) -> dict[str, Any]:
    config = yaml.safe_load(config_path.read_text())
    return dict(config["applications"][0].get("args") or {})


class OwnInstance:
    """Our own `serve run` with what `make run` ships, and its topics; removed at the end."""

    def __init__(self, args: argparse.Namespace) -> None:
        from bench.harness import serve_instance
        from devkit.names import RunNames
        from serve_app.serve_env import SERVE_ENV

        self.names = RunNames("soak")
        base = app_args(ROOT / "config.yaml")
        self.redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
        self.app = {
            "kafka_topic": self.names.topic,
            "kafka_dlq_topic": self.names.dlq_topic,
            "kafka_consumer_group": self.names.group,
            "redis_url": self.redis_url,
            "mongo_database": self.names.mongo_database,
        }
        self.mongo_url = str(base.get("mongo_url", "mongodb://127.0.0.1:27017/"))
        # mode haproxy + SERVE_ENV = exactly serve_app.serve_env's environment (`make run`), plus
        # fallback proxy ports of our own: with Serve's fixed 8500/9500, other instances' HAProxy
        # sent their votes to our proxy (docs/decisions/0017-soak-and-panel-check.md).
        fallback = {
            "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(args.fallback_ports[0]),
            "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(args.fallback_ports[1]),
        }
        self.serve = serve_instance.ServeInstance(
            args=self.app,
            mode="haproxy",
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            port_block=args.port_block,
            extra_env=dict(SERVE_ENV) | fallback,
        )
        self.topics = [self.names.topic, self.names.dlq_topic]

    def start(self) -> Target:
        import redis

        from devkit.kafka import create_topics
        from serve_app.stores.redis_counts import ALL_KEYS

        create_topics(self.topics)
        # Database 9 is the soak's: its counters start from zero, so the Contest panels show
        # this soak only.
        client = redis.Redis.from_url(self.redis_url)
        client.delete(*ALL_KEYS)
        client.close()
        self.serve.start()
        assert self.serve.proc is not None
        return Target(
            http_url=self.serve.http_url,
            grpc_target=self.serve.grpc_target,
            topic=self.names.topic,
            dlq_topic=self.names.dlq_topic,
            group=self.names.group,
            redis_url=self.redis_url,
            mongo_url=self.mongo_url,
            mongo_database=self.names.mongo_database,
            own=True,
            serve_session=self.serve.proc.pid,
        )

    def stop(self, keep_data: bool = False) -> None:
        from bench.harness.stores import drop_mongo_database
        from devkit.kafka import delete_topics

        self.serve.stop()
        if keep_data:
            log(
                f"kept: topics {self.topics}, MongoDB database {self.names.mongo_database}, "
                f"Redis database of {self.redis_url}"
            )
            return
        delete_topics(self.topics)
        drop_mongo_database(self.names.mongo_database)


def host_target(args: argparse.Namespace) -> Target:
    from urllib.parse import urlparse

    config = app_args(args.app_config)
    url = args.host.rstrip("/")
    grpc_target = args.grpc_target or f"{urlparse(url).hostname}:9000"
    return Target(
        http_url=url,
        grpc_target=grpc_target,
        topic=config["kafka_topic"],
        dlq_topic=config["kafka_dlq_topic"],
        group=config["kafka_consumer_group"],
        redis_url=config["redis_url"],
        mongo_url=config["mongo_url"],
        mongo_database=config["mongo_database"],
        own=False,
    )


def find_sd_file(args: argparse.Namespace, target: Target) -> Path:
    """Ray's service-discovery file of the target's Ray (see loadtest/prometheus.py)."""
    if args.ray_sd_file is not None:
        return args.ray_sd_file
    session_dir = None
    if target.serve_session is not None:
        deadline = time.monotonic() + 30
        while session_dir is None and time.monotonic() < deadline:
            session_dir = session_dir_of_session(target.serve_session)
            if session_dir is None:
                time.sleep(1)
    else:
        from urllib.parse import urlparse

        session_dir = session_dir_of_listener(urlparse(target.http_url).port or 80)
    if session_dir is None:
        raise PrometheusError(
            "could not find the Ray session of the target (no process names "
            "--session-dir); pass --ray-sd-file"
        )
    target.ray_session_dir = session_dir
    return service_discovery_file(session_dir)
