"""`make bench-scale`'s `serve run`s: N ingress replicas that fit the cores, started with retries,
and HAProxy routing to every one of them before a point is measured."""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import socket
import time
from pathlib import Path
from typing import Any

import psutil

from bench.harness.cpu import replica_counts
from bench.harness.env import log
from bench.harness.serve_instance import ServeInstance
from devkit.waiting import wait_until
from serve_app.serve_env import PORT_BLOCK_SIZE, SERVE_ENV

SERVE_MODE = "haproxy"  # what `make run` ships, with serve_app.serve_env.SERVE_ENV on top
INGEST_APP = "bench.apps:build_ingest_only"
START_RETRY_PAUSE_S = 15.0


def ingress_actor_options(config: dict[str, Any], replicas: int, cpus: int) -> dict[str, Any]:
    """config.yaml's VoteIngress ray_actor_options (runtime_env kept) with num_cpus lowered so that
    `replicas` of them fit in the `cpus` Ray has: a reservation, not a limit on what they use."""
    deployment = next(
        (d for d in config["applications"][0].get("deployments", []) if d["name"] == "VoteIngress"),
        None,
    )
    if deployment is None:
        raise ValueError("the Serve config has no VoteIngress deployment")
    options = copy.deepcopy(deployment.get("ray_actor_options") or {})
    configured = float(options.get("num_cpus", 1.0))
    fit = math.floor(100 * cpus / replicas) / 100
    options["num_cpus"] = min(configured, fit)
    return options


def haproxy_replicas_up(state_dir: Path) -> dict[str, int]:
    """Replica servers UP in each HAProxy backend (`show stat` on its admin socket, which Serve
    puts in a folder of its own under state_dir); {} while there is no socket to ask."""
    up: dict[str, int] = {}
    for socket_path in state_dir.glob("*/admin.sock"):
        with (
            contextlib.suppress(OSError),
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock,
        ):
            sock.settimeout(2)
            sock.connect(str(socket_path))
            sock.sendall(b"show stat\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            up |= replicas_up_in_stat(b"".join(chunks).decode(errors="replace"))
    return up


def replicas_up_in_stat(csv_text: str) -> dict[str, int]:
    """From HAProxy's `show stat` CSV: per backend, the Serve replica servers whose status is UP
    (not the fallback proxy, a backup server that is UP whenever Serve's proxy is)."""
    lines = csv_text.splitlines()
    header = lines[0].lstrip("# ").split(",") if lines else []
    if "status" not in header:
        return {}
    status = header.index("status")
    up: dict[str, int] = {}
    for line in lines[1:]:
        fields = line.split(",")
        if len(fields) <= status or not fields[1].startswith("SERVE_REPLICA"):
            continue
        up.setdefault(fields[0], 0)
        if fields[status].startswith("UP"):
            up[fields[0]] += 1
    return up


def start_serve(
    options: argparse.Namespace, app_args: dict[str, Any], overrides: dict[str, Any]
) -> ServeInstance:
    """A started ServeInstance, tried up to 3 times: on a loaded machine Ray's node start can
    time out (Ray 2.60 gives its raylet a fixed 30 s to register)."""
    attempts = 3
    for attempt in range(1, attempts + 1):
        wait_for_port_block(options)
        instance = ServeInstance(
            args=app_args,
            mode=SERVE_MODE,
            http_port=options.http_port,
            grpc_port=options.grpc_port,
            config_path=options.serve_config,
            deployment_overrides=overrides,
            import_path=INGEST_APP,
            port_block=options.port_block,
            # Exactly `make run`'s environment. Serve's fallback proxy
            # gets ports of the block (private_instance): decision 0017.
            extra_env=dict(SERVE_ENV),
        )
        try:
            instance.start()  # stops what it started when it fails with an Exception
            return instance
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C or SIGTERM while starting
            instance.stop()
            raise
        except Exception as exc:  # retried, then raised
            if attempt == attempts:
                raise
            log(
                f"Serve did not start ({type(exc).__name__}: {exc}); try {attempt + 1} of "
                f"{attempts} in {START_RETRY_PAUSE_S:.0f} s"
            )
            time.sleep(START_RETRY_PAUSE_S)
    raise AssertionError("not reached")


def wait_for_port_block(options: argparse.Namespace, timeout_s: float = 120.0) -> None:
    """Wait (bounded) until nothing listens in our port block: Ray's processes take random
    ports, and one of another instance's can sit in the block for a while."""
    block = range(options.port_block, options.port_block + PORT_BLOCK_SIZE)
    deadline = time.monotonic() + timeout_s
    said = False
    while holders := listeners(block):
        if time.monotonic() > deadline:
            return  # ServeInstance refuses to start and says which ports
        if not said:
            log(
                f"port block {block.start}-{block.stop - 1} in use by {holders}: waiting up to "
                f"{timeout_s:.0f} s"
            )
            said = True
        time.sleep(2)


def wait_for_replicas(instance: Any, replicas: int, timeout_s: float = 240) -> None:
    """All N replica processes alive and HAProxy routing to N servers of a backend."""
    session = instance.proc.pid
    wait_until(
        lambda: replica_counts([session]).get("serve_ingress_replica", 0) >= replicas,
        timeout_s,
        f"{replicas} ingress replica processes",
        every_s=1,
        alive=instance.proc.alive,
    )
    # Both backends (HTTP and gRPC) route to every replica.
    try:
        wait_until(
            lambda: min(haproxy_replicas_up(instance.haproxy_dir).values(), default=0) >= replicas,
            60,
            f"HAProxy routing to {replicas} replicas",
            every_s=1,
            alive=instance.proc.alive,
        )
    except Exception as exc:  # noqa: BLE001 - the processes are up; say so and measure anyway
        log(
            f"could not confirm HAProxy routes to all replicas ({exc}): "
            f"replicas UP per backend {haproxy_replicas_up(instance.haproxy_dir)}"
        )


def listeners(ports: range) -> dict[int, str]:
    """Ports of the range something listens on (TCP), with the listener's pid and name."""
    found: dict[int, str] = {}
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in ports:
                name = "?"
                with contextlib.suppress(psutil.Error):
                    name = psutil.Process(conn.pid).name() if conn.pid else "?"
                found[conn.laddr.port] = f"pid {conn.pid} {name}"
    return found
