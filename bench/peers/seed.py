"""The seed peers, launched: their command lines, start() and the `make bench-peers` command.

    .venv/bin/python -m bench.peers.seed build      (what `make bench-peers` runs)
    .venv/bin/python -m bench.peers.seed status     (what is built; compiles nothing)

Building them: bench/peers/seed_build.py. Why this shape: docs/decisions/0016-seed-peers.md.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.harness.env import log
from bench.harness.processes import Proc
from bench.peers.seed_build import PEERS, FailedBuild, binary_path, build, built
from bench.peers.seed_toolchains import _show
from devkit.kafka import KAFKA

LISTENING = "listening on"


def command(
    name: str,
    *,
    port: int,
    bootstrap: str = KAFKA,
    topic: str | None = None,
    upstream: str | None = None,
    host: str = "127.0.0.1",
    binary: Path | None = None,
) -> list[str]:
    """The command line of peer `name` listening on host:port.

    seed_rust_http and seed_go_grpc produce to `topic` at `bootstrap`; seed_go_http_client
    calls the seed_go_grpc at `upstream` (host:port).
    """
    program = str(binary or binary_path(name))
    listen = f"{host}:{port}"
    if name == "seed_go_http_client":
        if not upstream:
            raise ValueError("seed_go_http_client needs upstream= (the host:port of seed_go_grpc)")
        return [program, "--listen", listen, "--upstream", upstream]
    if not topic:
        raise ValueError(f"{name} needs topic= (the Kafka topic it produces to)")
    return [program, "--listen", listen, "--bootstrap", bootstrap, "--topic", topic]


def start(
    name: str,
    *,
    port: int,
    bootstrap: str = KAFKA,
    topic: str | None = None,
    upstream: str | None = None,
    host: str = "127.0.0.1",
    binary: Path | None = None,
    log_path: Path | None = None,
    timeout_s: float = 30.0,
) -> Proc:
    """Start peer `name` and return once it printed its `listening on` line (Proc: pid, stop()).

    Raises RuntimeError with the end of its output when it exits first or does not get there
    within timeout_s (then it is stopped).
    """
    argv = command(
        name,
        port=port,
        bootstrap=bootstrap,
        topic=topic,
        upstream=upstream,
        host=host,
        binary=binary,
    )
    if not Path(argv[0]).is_file():
        raise FileNotFoundError(
            f"{argv[0]} not found: build the seed peers first (`make bench-peers`)"
        )
    proc = Proc(name, argv, log_path=log_path)
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError):
            if f"{name} {LISTENING}" in proc.log_path.read_text(errors="replace"):
                return proc
        if not proc.alive():
            code = proc.popen.returncode
            proc.stop()
            raise RuntimeError(f"{name} exited with status {code} before listening:\n{proc.tail()}")
        if time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(
                f"{name} did not print '{LISTENING}' within {timeout_s:.0f} s:\n{proc.tail()}"
            )
        time.sleep(0.05)


# ---- command line ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers.seed", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "action",
        choices=["build", "status"],
        help="build: compile what changed (exit 1 when a build failed; a missing "
        "toolchain only skips); status: say what is built, compile nothing",
    )
    args = parser.parse_args(argv)
    results = build() if args.action == "build" else {name: built(name) for name in PEERS}
    for name, outcome in results.items():
        log(f"{name}: {_show(outcome) if isinstance(outcome, Path) else 'SKIPPED: ' + outcome}")
    if args.action == "status":
        return 0 if all(isinstance(outcome, Path) for outcome in results.values()) else 1
    return 1 if any(isinstance(outcome, FailedBuild) for outcome in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
