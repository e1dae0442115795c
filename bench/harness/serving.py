"""The `serve run`s of `make bench`: their app args, environment and ports, started and removed."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import redis

from bench.harness import loadgen
from bench.harness.env import MONGO_URL, PORT_RANGE, REDIS_HOST, REDIS_PORT, log
from bench.harness.payloads import Bodies
from bench.harness.serve_instance import SERVE_PORT_BLOCK, ServeInstance
from bench.harness.stores import clear_votes_keys, drop_mongo_database
from devkit.kafka import KAFKA
from devkit.net import free_port
from serve_app.serve_env import PORT_BLOCK_SIZE, SERVE_ENV

if TYPE_CHECKING:
    from bench.harness.runner import Bench


def serve_env(mode: str, fallback_ports: tuple[int, int]) -> dict[str, str]:
    """Environment on top of the mode's: in haproxy mode all of what `make run` sets
    (serve_app.serve_env.SERVE_ENV); in every mode fallback proxy ports of our own."""
    ports = {
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(fallback_ports[0]),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(fallback_ports[1]),
    }
    return (dict(SERVE_ENV) if mode == "haproxy" else {}) | ports


def own_ports(args: argparse.Namespace) -> tuple[int, int, int, int]:
    """HTTP, gRPC and the two fallback proxy ports, each distinct."""
    fallback = args.fallback_ports or [args.http_port + 4, args.grpc_port + 4]
    ports = (args.http_port, args.grpc_port, fallback[0], fallback[1])
    if len(set(ports)) < len(ports):
        raise SystemExit(
            f"--http-port, --grpc-port and --fallback-ports must be four ports, got {ports}"
        )
    return ports


def warm_http(http: tuple[str, int]) -> None:
    """One short request to /healthz: the first connection's cost stays out of the window."""
    with contextlib.suppress(Exception):
        loadgen.run_http(
            http[0],
            http[1],
            "/healthz",
            Bodies("single", "warm"),
            concurrency=1,
            warmup_s=0,
            duration_s=0.1,
        )


def serve_args(
    bench: Bench, label: str, settings: dict[str, Any] | None = None
) -> tuple[dict[str, Any], str]:
    """The app's args: our own topic, consumer group, Redis database and MongoDB database."""
    topic = bench.new_topic(f"serve-{label}", dlq=True)
    extra = dict(item.split("=", 1) for item in bench.args.app_arg) | (settings or {})
    return extra | {
        "kafka_bootstrap_servers": KAFKA,
        "kafka_topic": topic,
        "kafka_dlq_topic": topic + ".dlq",
        "kafka_consumer_group": bench.names.group_for(f"serve-{label}"),
        "redis_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/{bench.args.redis_db}",
        "mongo_url": MONGO_URL,
        "mongo_database": bench.names.mongo_database_for(f"serve_{label}".replace("-", "_")),
    }, topic


def overrides(bench: Bench) -> dict[str, dict[str, Any]]:
    """--ingress-max-ongoing, --ingress-replicas, --pool-replicas: the deployments' overrides."""
    changed: dict[str, dict[str, Any]] = {}
    if bench.args.ingress_max_ongoing:
        changed.setdefault("VoteIngress", {})["max_ongoing_requests"] = (
            bench.args.ingress_max_ongoing
        )
    if bench.args.ingress_replicas:
        changed.setdefault("VoteIngress", {})["num_replicas"] = bench.args.ingress_replicas
    if bench.args.pool_replicas:
        changed.setdefault("VotePersister", {})["num_replicas"] = bench.args.pool_replicas
    return changed


@contextlib.contextmanager
def serving(
    bench: Bench,
    app: str,
    mode: str,
    import_path: str | None,
    settings: dict[str, Any] | None = None,
    beside: bool = False,
) -> Iterator[tuple[ServeInstance, str, float]]:
    """A `serve run` of ours in `mode` (the app: `make run`'s, or a bench.apps builder; `settings`
    on top of its args), its processes metered; its topic, database and counters removed
    afterwards. `beside`: a second one next to a running one (a variant), on the next ports."""
    counters = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=bench.args.redis_db)
    if not beside:
        # the bench's own Redis database: the app's votes:* keys only
        clear_votes_keys(counters)
    args, topic = serve_args(bench, f"{mode}-{app}", settings)
    log(f"serve[{mode}]: {app} ({import_path or 'config.yaml'}) [{bench.progress()}]")
    started = time.monotonic()
    instance: ServeInstance | None = None
    metered_before = bench.measured_groups
    offset = 1 if beside else 0
    try:
        for attempt in (1, 2):  # on a busy machine a Serve part can miss its start deadline
            http_port, grpc_port, *fallback = (port + offset for port in own_ports(bench.args))
            instance = ServeInstance(
                args=args,
                mode=mode,
                http_port=http_port,
                grpc_port=grpc_port,
                config_path=bench.args.serve_config,
                import_path=import_path,
                deployment_overrides=overrides(bench),
                extra_env=serve_env(mode, (fallback[0], fallback[1])),
                port_block=SERVE_PORT_BLOCK + offset * PORT_BLOCK_SIZE,
                agent_port=free_port(PORT_RANGE) if beside else None,
            )
            try:
                instance.start()
                break
            except Exception as exc:
                if attempt == 2:
                    raise
                log(f"serve[{mode}]: {app} did not start ({type(exc).__name__}: {exc}); once more")
        assert instance is not None and instance.proc is not None
        bench.measured_groups = [instance.proc.pid]
        warm_http(("127.0.0.1", instance.http_port))
        yield instance, topic, round(time.monotonic() - started, 1)
    finally:
        bench.measured_groups = metered_before
        if instance is not None:
            instance.stop()
        drop_mongo_database(args["mongo_database"])
        if not beside:
            clear_votes_keys(counters)
        counters.close()
