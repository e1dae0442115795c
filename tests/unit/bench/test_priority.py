"""The bench measures every process at one niceness (docs/decisions/0026-bench-one-priority.md):
a stand-in "stack" process at another niceness is brought to the bench's before each repeat, and
gets its own back at the end. Needs CAP_SYS_NICE when the bench's niceness is the lower one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from bench.harness.priority import Priority, merge_niceness, one_priority, own_niceness
from bench.harness.runner import Bench
from devkit.waiting import wait_until

THREADED = (
    "import signal, threading, time\n"
    "def more(*_):\n"  # SIGUSR1: one more thread, like Kafka starting one mid-run
    "    threading.Thread(target=time.sleep, args=(120,), daemon=True).start()\n"
    "signal.signal(signal.SIGUSR1, more)\n"
    "for _ in range(2):\n"
    "    more()\n"
    "time.sleep(120)\n"
)


def niceness_of_threads(pid: int) -> set[int]:
    return {os.getpriority(os.PRIO_PROCESS, t.id) for t in psutil.Process(pid).threads()}


@pytest.fixture
def stack_like() -> Iterator[tuple[int, int]]:
    """A process with three threads at a niceness other than ours, like the stack at 15."""
    other = 15 if own_niceness() != 15 else 10
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", THREADED],
            preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, other),  # noqa: PLW1509
        )
    except PermissionError:
        pytest.skip(f"setting a child to nice {other} from nice {own_niceness()} needs root")
    try:
        wait_until(lambda: len(psutil.Process(child.pid).threads()) >= 3, 30, "the threads")
        yield child.pid, other
    finally:
        child.kill()
        child.wait()


def test_align_sets_every_thread_and_restore_gives_it_back(stack_like: tuple[int, int]) -> None:
    pid, other = stack_like
    assert niceness_of_threads(pid) == {other}
    priority = Priority(own_niceness())
    priority.align([pid])
    assert niceness_of_threads(pid) == {own_niceness()}
    os.kill(pid, signal.SIGUSR1)  # a thread born at the aligned niceness
    wait_until(lambda: len(psutil.Process(pid).threads()) >= 4, 30, "the fourth thread")
    priority.restore()
    assert niceness_of_threads(pid) == {other}


def test_each_repeat_measures_the_stack_at_the_bench_niceness(
    stack_like: tuple[int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid, _other = stack_like
    monkeypatch.setattr(Bench, "stack_pids", lambda _self: {"redis": pid})
    bench = Bench.__new__(Bench)
    bench.args = SimpleNamespace(profile=False, out=tmp_path)
    bench.plan = SimpleNamespace(repeats_of=lambda _name: 1)
    bench.started, bench.expected_s = 0.0, 0.0
    bench.measured_pids, bench.measured_groups = {}, []
    bench.profiled, bench.profiling, bench.profiled_runs = set(), False, {}
    bench.priority = Priority(own_niceness())
    try:
        (run,) = bench.repeat("redis_raw", lambda: {"votes_per_s": 1.0})
    finally:
        bench.priority.restore()
    assert run["niceness"]["redis"] == [own_niceness()]
    assert one_priority(run["niceness"]) == own_niceness()


def test_one_priority_only_when_every_part_agrees() -> None:
    assert one_priority({"kafka": [0], "peer": [0]}) == 0
    assert one_priority({"kafka": [15], "peer": [0]}) is None
    assert one_priority({}) is None
    assert merge_niceness([{"kafka": [15]}, {"kafka": [0], "peer": [0]}]) == {
        "kafka": [0, 15],
        "peer": [0],
    }


def test_a_niceness_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="between -20 and 19"):
        Priority(20)
