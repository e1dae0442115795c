"""`Stack.kill(part)`: a part dies as in a crash or an OOM kill (SIGKILL, no shutdown of its own).

A stand-in part (a small Python process) replaces Redis in a stack under a temporary root: it
writes a file when it shuts down cleanly on SIGTERM, so the test can tell a kill from a stop.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from deployments.local.stack import Config, Stack
from deployments.local.stack.__main__ import build_parser, run
from deployments.local.stack.service import Service

# Says it is ready, and on SIGTERM writes "clean" before it exits (what a store's shutdown does).
STAND_IN = """
import pathlib, signal, sys, time
def shutdown(*_):
    pathlib.Path("clean").write_text("clean")
    sys.exit(0)
signal.signal(signal.SIGTERM, shutdown)
pathlib.Path("ready").write_text("ready")
while True:
    time.sleep(1)
"""


class StandIn(Service):
    name = "redis"
    startup_timeout_s = 20.0
    port_variables = "-"

    def ports(self) -> tuple[int, ...]:
        return (1,)  # nothing listens on port 1 here: the port check passes

    def install(self) -> None:
        pass

    def prepare(self) -> None:
        pass

    def command(self) -> list[str]:
        return [sys.executable, "-c", STAND_IN]

    def is_ours(self, pid: int, argv: list[str]) -> bool:
        return argv[-1] == STAND_IN

    def check(self, timeout_s: float, provision: bool) -> str | None:
        return None if (self.data_dir / "ready").exists() else "not ready"


def stack_with_stand_in(root: Path) -> tuple[Stack, io.StringIO]:
    out = io.StringIO()
    stack = Stack(Config.from_env({"VOTES_STACK_DIR": str(root)}), out=out)
    stack.services["redis"] = StandIn(stack.config, stack._say)
    return stack, out


def test_kill_ends_a_part_at_once_without_its_shutdown(tmp_path: Path) -> None:
    stack, out = stack_with_stand_in(tmp_path)
    stack.start("redis")
    pid = stack._running_pid("redis")
    assert pid is not None
    try:
        stack.kill("redis")
    finally:
        if stack._running_pid("redis") is not None:
            stack.stop("redis")
    assert stack._running_pid("redis") is None
    data = stack.services["redis"].data_dir
    assert not (data / "clean").exists(), "the part shut down cleanly: it was not killed"
    assert not stack.config.pid_path("redis").exists()
    assert f"redis: killed (pid {pid}, SIGKILL)" in out.getvalue()
    # It starts again on the data it left behind (and says again when it is ready).
    (data / "ready").unlink()
    stack.start("redis")
    stack.stop("redis")
    assert (data / "clean").exists()  # stop, unlike kill, lets it shut down


def test_kill_of_a_part_that_is_not_running_says_so(tmp_path: Path) -> None:
    stack, out = stack_with_stand_in(tmp_path)
    stack.kill("redis")
    assert "redis: not running" in out.getvalue()


def test_kill_refuses_an_unknown_part(tmp_path: Path) -> None:
    from deployments.local.stack import StackError

    stack, _ = stack_with_stand_in(tmp_path)
    with pytest.raises(StackError, match="unknown part 'mysql'"):
        stack.kill("mysql")


def test_the_command_line_kills_a_part(tmp_path: Path) -> None:
    args = build_parser().parse_args(["kill", "redis"])
    assert (args.command, args.part) == ("kill", "redis")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["kill", "mysql"])
    stack, out = stack_with_stand_in(tmp_path)
    assert run(stack, args) == 0
    assert "redis: not running" in out.getvalue()
