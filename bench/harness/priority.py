"""One priority for everything `make bench` measures (docs/decisions/0026-bench-one-priority.md).

The local stack runs at nice 15 and Ray starts its workers (the Serve replicas) at nice 15
(decision 0005), while the peers, the load generator and Ray's daemons run at the niceness they
were started with. On 2 shared cores a niceness is a CPU weight, so the bench brings every
process it measures to one niceness before each repeat: by default its own (`make bench`: 0;
under `nice -n 19`: 19). The stack's threads get their niceness back at the end of the run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

import psutil


def own_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


def threads_of(pids: Iterable[int]) -> list[int]:
    """Every thread of `pids` and of their descendants (a niceness is per thread on Linux)."""
    tids: list[int] = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    tids += [thread.id for thread in proc.threads()]
    return sorted(set(tids))


class Priority:
    """Sets the measured processes to `niceness`, remembers what each thread had before, and
    what it could not change (lowering a niceness needs CAP_SYS_NICE)."""

    def __init__(self, niceness: int) -> None:
        if not -20 <= niceness <= 19:
            raise ValueError(f"a niceness is between -20 and 19 (got {niceness})")
        self.niceness = niceness
        self.before: dict[int, int] = {}  # by thread id, the niceness align() found
        self.roots: dict[int, int] = {}  # by pid given to align(), its niceness then
        self.refused: dict[int, str] = {}

    def align(self, pids: Iterable[int]) -> None:
        """Every thread of `pids` (and their children) at `niceness`."""
        pids = list(pids)
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                self.roots.setdefault(pid, psutil.Process(pid).nice())
        for tid in threads_of(pids):
            with contextlib.suppress(ProcessLookupError):
                current = os.getpriority(os.PRIO_PROCESS, tid)
                if current == self.niceness:
                    continue
                try:
                    os.setpriority(os.PRIO_PROCESS, tid, self.niceness)
                except PermissionError as exc:
                    self.refused[tid] = f"nice {current} (setpriority: {exc.strerror})"
                    continue
                self.before.setdefault(tid, current)

    def restore(self) -> None:
        """Give every thread still alive the niceness it had before `align`; a thread started
        since (Kafka starts some) gets its process's."""
        for root, niceness in self.roots.items():
            for tid in threads_of([root]):
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, tid, self.before.get(tid, niceness))
        for tid, niceness in self.before.items():
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
        self.before.clear()
        self.roots.clear()


def one_priority(niceness_by_part: dict[str, list[int]]) -> int | None:
    """The niceness every measured part ran at, or None when they differ (or none is known)."""
    values = {n for values in niceness_by_part.values() for n in values}
    return values.pop() if len(values) == 1 else None


def merge_niceness(runs: Iterable[dict[str, list[int]]]) -> dict[str, list[int]]:
    """The niceness values each part was seen at, over several repeats."""
    seen: dict[str, set[int]] = {}
    for run in runs:
        for part, values in run.items():
            seen.setdefault(part, set()).update(values)
    return {part: sorted(values) for part, values in sorted(seen.items())}
