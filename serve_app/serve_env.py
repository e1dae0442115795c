"""The environment every Ray process running our Serve app starts with: one list, three users.

Ray Serve reads these switches from the environment of its controller, proxies and replicas, not
from config.yaml, so they must be set where Ray starts: `make run` (through `main` below), the test
session (tests/conftest.py) and the RayService's head and worker containers (deployments.manifests).

    # what `make run` does:
    .venv/bin/python -m serve_app.serve_env --ray-token-file .stack/ray/auth_token \\
        serve run config.yaml

A variable already set in the caller's environment wins, so `RAY_SERVE_ENABLE_HA_PROXY=0 make run`
goes back to Serve's Python proxy. Why these: docs/decisions/0006-serve-environment.md.

Every Ray cluster the project starts reads its auth token from a file the project owns
(`ray_token_env`), never ~/.ray/auth_token: docs/decisions/0010-ray-token-file.md.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from serve_app.ingress.limits import GRPC_MAX_MESSAGE_BYTES

SERVE_ENV: dict[str, str] = {
    # Direct ingress behind HAProxy, 5x the single votes of Serve's proxy: decision 0006.
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    # ... but unbuffered logs, so the pool's warnings show at once: decision 0006.
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1",
    # The largest gRPC message the proxies and replicas accept (Serve's default: 2 GiB).
    "RAY_SERVE_GRPC_MAX_MESSAGE_SIZE": str(GRPC_MAX_MESSAGE_BYTES),
}


def apply(environ: MutableMapping[str, str], defaults: Mapping[str, str] = SERVE_ENV) -> None:
    """Add our settings to environ, keeping any value the caller already set."""
    for name, value in defaults.items():
        environ.setdefault(name, value)


def ray_token_env(token_file: Path) -> dict[str, str]:
    """Token auth for a Ray cluster we start, its token in token_file (created if missing).

    Ray 2.60 turns token auth on for new local clusters; RAY_AUTH_TOKEN_PATH points every Ray
    process and driver of ours at this file instead of ~/.ray/auth_token.
    """
    if not token_file.exists():
        token_file.parent.mkdir(parents=True, exist_ok=True)
        # 0600 from the start: the token lets its holder run code on the cluster.
        descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(32))  # what `ray get-auth-token --generate` writes
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file.resolve())}


def auth_settings(environ: Mapping[str, str], token_file: Path) -> dict[str, str]:
    """ray_token_env(token_file), unless the caller chose Ray's auth already (mode or token)."""
    if any(name in environ for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")):
        return {}
    return ray_token_env(token_file)


# Ports a private instance takes from its block (see private_instance).
PORT_BLOCK_SIZE = 44


def private_instance(state_dir: Path, first_port: int) -> dict[str, str]:
    """Settings that let a second Serve instance share the machine (a test session, the bench).

    By default HAProxy keeps its files under /tmp/haproxy-serve and listens on 8404 and 9101, and
    the replicas' direct-ingress servers take ports 30000-31000 (HTTP) and 40000-41000 (gRPC):
    two instances would collide. This moves HAProxy's files into state_dir (keep the path short:
    a unix socket path must stay under 97 characters and Serve adds a 56-character folder) and
    takes PORT_BLOCK_SIZE ports from first_port: HTTP [+0, +20), gRPC [+20, +40), HAProxy
    metrics +40, stats +41, and Serve's fallback proxy (HAProxy's backup server, 8500 and 9500 by
    default) +42, +43: on the default ports every instance's HAProxy sent votes to whichever
    instance bound them first (docs/decisions/0017-soak-and-panel-check.md).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    return {
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(first_port),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(first_port + 19),
        "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(first_port + 20),
        "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(first_port + 39),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(first_port + 40),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(first_port + 41),
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(first_port + 42),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(first_port + 43),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(state_dir / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(state_dir / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(state_dir),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(state_dir / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(state_dir / "metrics.sock"),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serve_app.serve_env",
        description="Run COMMAND with the Serve environment (and a Ray token file of our own).",
    )
    parser.add_argument(
        "--ray-token-file",
        type=Path,
        help="Ray's auth token: read from this file, created there if missing "
        "(default: Ray's own, ~/.ray/auth_token)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="COMMAND [ARG ...]")
    options = parser.parse_args(argv)
    if not options.command:
        parser.print_usage(sys.stderr)
        print("serve_env: error: COMMAND is missing", file=sys.stderr)
        return 2
    program = shutil.which(options.command[0]) or options.command[0]
    environ = dict(os.environ)
    apply(environ)
    effective = [f"{name}={environ[name]}" for name in SERVE_ENV]
    print(f"serve_env: {' '.join(effective)}", file=sys.stderr)
    if options.ray_token_file is not None:
        try:
            auth = auth_settings(environ, options.ray_token_file)
        except OSError as exc:
            print(
                f"serve_env: cannot create the Ray token file {options.ray_token_file}: "
                f"{exc.strerror}",
                file=sys.stderr,
            )
            return 1
        environ |= auth
        if auth:
            print(
                f"serve_env: Ray token in {options.ray_token_file} (the Ray dashboard asks for it)",
                file=sys.stderr,
            )
    argv = options.command
    try:
        os.execve(program, argv, environ)
    except OSError as exc:
        print(f"serve_env: cannot run {argv[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
