"""Process handling shared by every part: launch, pid files, stop by pid, the lock, log tails.

Nothing here knows about Kafka, Redis or FerretDB; it only reads /proc and sends signals to pids
the stack wrote into its own pid files.
"""

import contextlib
import errno
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

# The Serve replicas' niceness: docs/decisions/0005-stack-niceness.md
STACK_NICENESS = 15


def launch(
    command: Sequence[str], cwd: Path, log_path: Path, banner: str, user: str | None = None
) -> subprocess.Popen[bytes]:
    """Start `command` at STACK_NICENESS in its own session, appending its output to log_path.

    `user`: run it as this user instead (PostgreSQL refuses to run as root).
    """
    with log_path.open("ab") as log:
        log.write(f"\n===== {banner} at {time.ctime()} =====\n".encode())
        log.flush()
        return subprocess.Popen(
            ["nice", "-n", str(STACK_NICENESS), *command],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
        )


def read_pid(pid_path: Path) -> int | None:
    """The pid written in a pid file, if the file exists and holds a number."""
    try:
        return int(pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def cmdline(pid: int) -> list[str] | None:
    """The process's argv from /proc, or None if it is gone (or a kernel thread)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [arg.decode(errors="replace") for arg in raw.rstrip(b"\0").split(b"\0")] if raw else None


def working_dir(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def alive(pid: int) -> bool:
    """True if the process exists and has not exited (a zombie counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def send_signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def kill_group(pid: int) -> None:
    """SIGKILL pid and, when it leads its own process group (launch starts each part in a
    session of its own), every process of that group."""
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)


def wait_for_exit(pid: int, timeout_s: float, every_s: float = 0.2) -> bool:
    """Wait up to timeout_s for the process to exit; True if it did."""
    deadline = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(every_s)
    return not alive(pid)


def port_free(port: int) -> bool:
    """Whether we could listen on 127.0.0.1:port (also False if 0.0.0.0:port is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def listener_pid(port: int) -> int | None:
    """The pid listening on a TCP port, from /proc/net/tcp* and /proc/*/fd (best effort)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                fields = row.split()  # local address is "HEXIP:HEXPORT", state 0A is LISTEN
                if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                    inodes.add(fields[9])
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in targets:
                        return int(proc.name)
    return None


def port_holder(ports: Sequence[int]) -> tuple[int, str] | None:
    """(port, who) for the first of `ports` that some process already listens on."""
    for port in ports:
        if port_free(port):
            continue
        pid = listener_pid(port)
        if pid is None:
            return port, "another process"
        command = " ".join(" ".join(cmdline(pid) or ["?"]).split())
        return port, f"pid {pid} ({command[:60]})"
    return None


class StackLock:
    """An exclusive flock on one file, re-entrant within this object.

    Serializes stack runs on the same root: several people share one stack.
    """

    def __init__(self, path: Path, say: Callable[[str], None]):
        self._path = path
        self._say = say
        self._file: IO[str] | None = None
        self._depth = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self._depth == 0:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._path.open("w")
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._say("waiting for another stack run on this stack to finish ...")
                fcntl.flock(self._file, fcntl.LOCK_EX)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._file is not None:
                self._file.close()  # releases the flock
                self._file = None


def log_tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a log file (read from its last 64 KiB)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError as exc:
        return f"(cannot read log: {exc})\n"
    return "".join(line + "\n" for line in text.splitlines()[-lines:])
