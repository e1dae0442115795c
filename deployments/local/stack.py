"""Local development stack: Kafka (KRaft), Redis and FerretDB as plain background processes.

    .venv/bin/python deployments/local/stack.py up|down|status|clean
    .venv/bin/python deployments/local/stack.py start|stop kafka|redis|ferretdb

Everything (installed tools, data, logs, pid files) lives under one folder, `.stack/` at the repo
root (override with VOTES_STACK_DIR). `up` installs what is missing, starts what is not running,
waits until every part answers a health check and creates the Kafka topics. See README.md next to
this file for the layout and the environment variables.

The module is importable by path (it is not in a package), e.g. from a test:

    spec = importlib.util.spec_from_file_location("stack", "deployments/local/stack.py")
    stack = importlib.util.module_from_spec(spec); spec.loader.exec_module(stack)
    stack.Stack().stop("kafka")
"""

import argparse
import base64
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
KAFKA_CONF_DIR = HERE / "kafka"
KAFKA_POM = KAFKA_CONF_DIR / "pom.xml"
KAFKA_PROPERTIES_TEMPLATE = KAFKA_CONF_DIR / "server.properties.template"
KAFKA_LOG4J_CONFIG = KAFKA_CONF_DIR / "log4j2.properties"

FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.2"
# Source patches applied to the FerretDB build, as (file, original, replacement). Stamped next to
# the binary so a changed patch set rebuilds it.
FERRETDB_PATCHES: tuple[tuple[str, str, str], ...] = (
    # FerretDB 1.24's SQLite backend filters `{_id: x}` on `_ferretdb_sjson->'$._id'` while its
    # unique index is on `_ferretdb_sjson->"_id"`; SQLite only uses an expression index for the
    # same expression, so every lookup by _id scanned the whole collection (0.2 s per lookup at
    # 20k votes, linear in the log's size). `->'_id'` is the same path and matches the index.
    (
        "internal/backends/sqlite/metadata/metadata.go",
        "IDColumn = DefaultColumn + \"->'$._id'\"",
        "IDColumn = DefaultColumn + \"->'_id'\"",
    ),
)
FERRETDB_BUILD = (
    FERRETDB_VERSION + "+" + hashlib.sha256(repr(FERRETDB_PATCHES).encode()).hexdigest()[:12]
)

# Start order; `down` stops in reverse. Kafka is last because it is the slowest to become healthy.
PARTS: tuple[str, ...] = ("redis", "ferretdb", "kafka")
STARTUP_TIMEOUT_S = {"redis": 30.0, "ferretdb": 30.0, "kafka": 90.0}
STOP_TIMEOUT_S = 20.0
# Ray starts its workers (the Serve replicas) at niceness 15, so that they never starve its own
# raylet and GCS. Started at the default 0, Kafka, Redis and FerretDB would outrank every replica
# 28 to 1 in CPU weight (under an overload test, top showed FerretDB at 1.2 cores beside the
# starved ingress replica). On Kubernetes they run on their own pods; here they run at the
# replicas' niceness, so that all of them share the cores as equals.
STACK_NICENESS = 15
PORT_ENV = {
    "kafka": "VOTES_KAFKA_PORT / VOTES_KAFKA_CONTROLLER_PORT",
    "redis": "VOTES_REDIS_PORT",
    "ferretdb": "VOTES_MONGO_PORT / VOTES_FERRETDB_DEBUG_PORT",
}
LOG_TAIL_LINES = 20


class StackError(Exception):
    """A part could not be installed, started or checked; the message says which and why."""

    def __init__(self, message: str, part: str | None = None, log_path: Path | None = None):
        super().__init__(message)
        self.part = part
        self.log_path = log_path

    def report(self) -> str:
        """The message plus the tail of the part's log file, for humans."""
        text = f"stack: ERROR: {self}"
        if self.log_path is not None:
            tail = _tail(self.log_path, LOG_TAIL_LINES)
            text += f"\n--- last {LOG_TAIL_LINES} lines of {self.log_path} ---\n{tail}"
            text += f"--- full log: {self.log_path} ---"
        return text


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    """Where the stack lives and what it listens on; every field has a VOTES_* override."""

    root: Path
    kafka_port: int
    kafka_controller_port: int
    redis_port: int
    mongo_port: int
    ferretdb_debug_port: int  # 0 disables FerretDB's HTTP debug/metrics listener
    kafka_topic: str
    kafka_dlq_topic: str
    kafka_partitions: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Config":
        env = os.environ if environ is None else environ

        def port(name: str, default: int, allow_zero: bool = False) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            if not raw.isdigit() or not (0 if allow_zero else 1) <= int(raw) <= 65535:
                raise StackError(f"{name}={raw!r} is not a TCP port number")
            return int(raw)

        kafka_port = port("VOTES_KAFKA_PORT", 9092)
        partitions = env.get("VOTES_KAFKA_PARTITIONS", "6").strip()
        if not partitions.isdigit() or int(partitions) < 1:
            raise StackError(f"VOTES_KAFKA_PARTITIONS={partitions!r} is not a positive integer")
        topic = env.get("VOTES_KAFKA_TOPIC", "").strip() or "votes"
        return cls(
            root=Path(env.get("VOTES_STACK_DIR") or REPO_ROOT / ".stack").resolve(),
            kafka_port=kafka_port,
            kafka_controller_port=port("VOTES_KAFKA_CONTROLLER_PORT", kafka_port + 1),
            redis_port=port("VOTES_REDIS_PORT", 6379),
            mongo_port=port("VOTES_MONGO_PORT", 27017),
            ferretdb_debug_port=port("VOTES_FERRETDB_DEBUG_PORT", 8088, allow_zero=True),
            kafka_topic=topic,
            kafka_dlq_topic=env.get("VOTES_KAFKA_DLQ_TOPIC", "").strip() or f"{topic}.dlq",
            kafka_partitions=int(partitions),
        )

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def ports(self, part: str) -> tuple[int, ...]:
        """Every port a part listens on; the first one is the one clients use."""
        if part == "kafka":
            return (self.kafka_port, self.kafka_controller_port)
        if part == "redis":
            return (self.redis_port,)
        if part == "ferretdb":
            debug = (self.ferretdb_debug_port,) if self.ferretdb_debug_port else ()
            return (self.mongo_port, *debug)
        raise StackError(f"unknown part {part!r}; parts are {', '.join(PARTS)}")


@dataclass(frozen=True)
class PartStatus:
    part: str
    running: bool
    pid: int | None
    port: int
    healthy: bool
    detail: str = ""

    def line(self) -> str:
        state = "running" if self.running else "stopped"
        pid = f"pid {self.pid}" if self.pid else "-"
        health = "healthy" if self.healthy else "NOT healthy"
        detail = f"  ({self.detail})" if self.detail else ""
        return f"{self.part:<9} {state:<8} {pid:<11} 127.0.0.1:{self.port:<6} {health}{detail}"


# --------------------------------------------------------------------------- the stack


class Stack:
    """Install, start, stop and check the local Kafka, Redis and FerretDB processes."""

    def __init__(self, config: Config | None = None, out: IO[str] | None = None):
        self.config = config or Config.from_env()
        self._out = out if out is not None else sys.stdout
        self._lock_file: IO[str] | None = None
        self._lock_depth = 0
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # processes started by this object
        self._mongo: Any = None  # pymongo.MongoClient, created on first FerretDB health check

    # ----- layout under the stack root

    @property
    def root(self) -> Path:
        return self.config.root

    def data_dir(self, part: str) -> Path:
        return self.root / "data" / part

    def log_path(self, part: str) -> Path:
        return self.root / "logs" / f"{part}.log"

    def pid_path(self, part: str) -> Path:
        return self.root / "run" / f"{part}.pid"

    @property
    def kafka_libs(self) -> Path:
        return self.root / "kafka" / "libs"

    @property
    def kafka_properties(self) -> Path:
        return self.root / "kafka" / "server.properties"

    @property
    def ferretdb_bin(self) -> Path:
        return self.root / "bin" / "ferretdb"

    @property
    def ferretdb_state_dir(self) -> Path:
        return self.root / "state" / "ferretdb"

    @property
    def cache_dir(self) -> Path:
        """Go's and Maven's caches: under the stack, never in the home folder."""
        return self.root / "cache"

    def _go_env(self) -> dict[str, str]:
        cache = self.cache_dir
        return {
            **os.environ,
            "GOWORK": "off",
            "GOFLAGS": "-mod=readonly -modcacherw",  # -modcacherw: `rm -rf .stack` works
            "GOPATH": str(cache / "go"),
            "GOMODCACHE": str(cache / "go" / "pkg" / "mod"),
            "GOCACHE": str(cache / "go-build"),
            "GOTOOLCHAIN": "local",  # build with the Go that is installed, never download one
        }

    # ----- public API

    def up(self) -> None:
        """Install what is missing, start what is not running, wait until all parts are healthy."""
        with self._locked():
            started = [part for part in PARTS if self._launch(part)]
            for part in PARTS:
                self._wait_healthy(part, announce=part in started)
            cfg = self.config
            self._say(
                f"up: kafka {cfg.kafka_bootstrap} (topics {cfg.kafka_topic}, "
                f"{cfg.kafka_dlq_topic}), redis 127.0.0.1:{cfg.redis_port}, "
                f"mongodb 127.0.0.1:{cfg.mongo_port}"
            )

    def install(self) -> None:
        """Install every part that is missing, start nothing (what needs the network, done once)."""
        with self._locked():
            for part in PARTS:
                self._install(part)
            self._say(f"install: kafka, redis and ferretdb are installed under {self.root}")

    def down(self) -> None:
        """Stop the processes this stack started (pid files under run/); data is kept."""
        with self._locked():
            self._terminate(list(reversed(PARTS)))

    def clean(self) -> None:
        """`down`, then delete data and logs; installed tools (jars, ferretdb binary) are kept."""
        with self._locked():
            self._terminate(list(reversed(PARTS)))
            for path in (self.root / "data", self.root / "logs", self.root / "state"):
                if path.exists():
                    shutil.rmtree(path)
            self._say(f"deleted data and logs under {self.root}")

    def start(self, part: str) -> None:
        """Start one part (if it is not running) and wait until it is healthy."""
        self.config.ports(part)  # validates the name
        with self._locked():
            started = self._launch(part)
            self._wait_healthy(part, announce=started)

    def stop(self, part: str) -> None:
        """Stop one part; its data is kept."""
        self.config.ports(part)
        with self._locked():
            self._terminate([part])

    def is_healthy(self, part: str, timeout_s: float = 3.0) -> bool:
        """Whether the part answers its health check (whoever runs it)."""
        return self._health_problem(part, timeout_s) is None

    def status(self) -> list[PartStatus]:
        result = []
        for part in PARTS:
            pid = self._running_pid(part)
            port = self.config.ports(part)[0]
            if pid is None:
                taken = self._foreign_listener(part)
                detail = f"port {taken[0]} is in use by {taken[1]}, not ours" if taken else ""
                result.append(PartStatus(part, False, None, port, False, detail))
                continue
            problem = self._health_problem(part, timeout_s=3.0)
            result.append(PartStatus(part, True, pid, port, problem is None, problem or ""))
        return result

    # ----- starting

    def _launch(self, part: str) -> bool:
        """Start `part` in the background unless our process is already running; True if started."""
        pid = self._running_pid(part)
        if pid is not None:
            self._say(f"{part}: already running (pid {pid})")
            return False
        self.pid_path(part).unlink(missing_ok=True)  # stale: process gone or pid reused
        taken = self._foreign_listener(part)
        if taken:
            port, who = taken
            raise StackError(
                f"port 127.0.0.1:{port} needed by {part} is already in use by {who}, which this "
                f"stack did not start; stop that process or give {part} other ports "
                f"({PORT_ENV[part]})",
                part,
            )
        self._install(part)
        for path in (self.root / "run", self.root / "logs", self.data_dir(part)):
            path.mkdir(parents=True, exist_ok=True)
        command = ["nice", "-n", str(STACK_NICENESS), *self._prepare(part)]
        with self.log_path(part).open("ab") as log:
            log.write(f"\n===== stack.py: starting {part} at {time.ctime()} =====\n".encode())
            log.flush()
            process = subprocess.Popen(
                command,
                cwd=self.data_dir(part),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._children[part] = process
        self.pid_path(part).write_text(f"{process.pid}\n")
        ports = ", ".join(f"127.0.0.1:{p}" for p in self.config.ports(part))
        self._say(
            f"{part}: started (pid {process.pid}, {ports}, log {self._show(self.log_path(part))})"
        )
        return True

    def _prepare(self, part: str) -> list[str]:
        """Write the part's config files and return its command line."""
        cfg = self.config
        if part == "redis":
            return [
                _which("redis-server", part),
                "--bind", "127.0.0.1",
                "--port", str(cfg.redis_port),
                "--dir", str(self.data_dir("redis")),
                # Counters are committed before Kafka offsets: an acknowledged write must survive.
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--daemonize", "no",
                "--protected-mode", "yes",
                "--logfile", "",
            ]  # fmt: skip
        if part == "ferretdb":
            self.ferretdb_state_dir.mkdir(parents=True, exist_ok=True)
            debug = f"127.0.0.1:{cfg.ferretdb_debug_port}" if cfg.ferretdb_debug_port else "-"
            return [
                str(self.ferretdb_bin),
                "--handler=sqlite",
                f"--sqlite-url=file:{self.data_dir('ferretdb')}/",
                f"--state-dir={self.ferretdb_state_dir}",
                f"--listen-addr=127.0.0.1:{cfg.mongo_port}",
                f"--debug-addr={debug}",
                "--telemetry=disable",
                "--log-format=console",
            ]
        if part == "kafka":
            template = string.Template(KAFKA_PROPERTIES_TEMPLATE.read_text())
            self.kafka_properties.write_text(
                template.substitute(
                    kafka_port=cfg.kafka_port,
                    controller_port=cfg.kafka_controller_port,
                    data_dir=self.data_dir("kafka"),
                )
            )
            if not (self.data_dir("kafka") / "meta.properties").exists():
                self._format_kafka_storage()
            return self._kafka_java("kafka.Kafka", str(self.kafka_properties))
        raise StackError(f"unknown part {part!r}")

    def _kafka_java(self, main_class: str, *args: str) -> list[str]:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else _which("java", "kafka")
        return [
            java,
            "-Xms256m",
            "-Xmx768m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={KAFKA_LOG4J_CONFIG}",
            "-cp",
            f"{self.kafka_libs}/*",
            main_class,
            *args,
        ]

    def _format_kafka_storage(self) -> None:
        """Format the KRaft log directory once; meta.properties marks it as done."""
        cluster_id = _kafka_uuid()
        where = self._show(self.data_dir("kafka"))
        self._say(f"kafka: formatting storage {where} (cluster id {cluster_id})")
        command = self._kafka_java(
            "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.kafka_properties)
        )
        with self.log_path("kafka").open("ab") as log:
            log.write(f"\n===== stack.py: formatting storage at {time.ctime()} =====\n".encode())
            log.flush()
            result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            raise StackError("kafka storage format failed", "kafka", self.log_path("kafka"))

    # ----- health

    def _wait_healthy(self, part: str, announce: bool) -> None:
        """Poll the health check until it passes; fail early if the process exits."""
        timeout = STARTUP_TIMEOUT_S[part]
        began = time.monotonic()
        waiting_said = False
        while True:
            if self._running_pid(part) is None:
                child = self._children.get(part)
                code = child.poll() if child is not None else None
                # Only a child that really exited is a failure: /proc can briefly disagree
                # with a process that is still starting up.
                if child is None or code is not None:
                    how = f" with exit code {code}" if code is not None else ""
                    raise StackError(f"{part} exited during startup{how}", part,
                                     self.log_path(part))
            problem = self._health_problem(part, timeout_s=3.0, create_topics=True)
            elapsed = time.monotonic() - began
            if problem is None:
                if announce:
                    self._say(f"{part}: healthy after {elapsed:.1f} s")
                return
            if elapsed > timeout:
                raise StackError(
                    f"{part} did not become healthy within {timeout:.0f} s (last check: {problem})",
                    part,
                    self.log_path(part),
                )
            if not waiting_said:
                self._say(f"{part}: waiting until healthy (up to {timeout:.0f} s) ...")
                waiting_said = True
            time.sleep(0.5)

    def _health_problem(
        self, part: str, timeout_s: float, create_topics: bool = False
    ) -> str | None:
        """None if the part answers its health check, else a short description of the problem."""
        checks: dict[str, Callable[[float], str | None]] = {
            "redis": self._redis_problem,
            "ferretdb": self._ferretdb_problem,
            "kafka": lambda t: self._kafka_problem(t, create_topics),
        }
        self.config.ports(part)
        try:
            return checks[part](timeout_s)
        except Exception as exc:  # noqa: BLE001 - any client error means "not healthy"
            return f"{type(exc).__name__}: {exc}".strip()

    def _redis_problem(self, timeout_s: float) -> str | None:
        import redis

        client = redis.Redis(
            host="127.0.0.1",
            port=self.config.redis_port,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        try:
            return None if client.ping() else "PING failed"
        finally:
            client.close()

    def _ferretdb_problem(self, timeout_s: float) -> str | None:
        import pymongo

        # One client per Stack, never closed: FerretDB 1.x does not implement endSessions, which
        # pymongo sends on close(), and logs every such failed command as a 15-line WARN.
        if self._mongo is None:
            self._mongo = pymongo.MongoClient(
                "127.0.0.1",
                self.config.mongo_port,
                directConnection=True,
                serverSelectionTimeoutMS=3000,
                connect=False,
            )
        with pymongo.timeout(timeout_s):
            reply = self._mongo.admin.command("ping")
        return None if reply.get("ok") == 1 else f"ping replied {reply}"

    def _kafka_problem(self, timeout_s: float, create_topics: bool) -> str | None:
        from confluent_kafka.admin import AdminClient, NewTopic

        cfg = self.config
        admin = AdminClient(_quiet_kafka_config(cfg.kafka_bootstrap))
        topics = admin.list_topics(timeout=timeout_s).topics
        wanted = {cfg.kafka_topic: cfg.kafka_partitions, cfg.kafka_dlq_topic: 1}
        missing = {name: n for name, n in wanted.items() if name not in topics}
        if missing and create_topics:
            new = [
                NewTopic(name, num_partitions=n, replication_factor=1)
                for name, n in missing.items()
            ]
            for name, future in admin.create_topics(new, request_timeout=timeout_s).items():
                error = future.exception(timeout=timeout_s)
                if error is not None and "TOPIC_ALREADY_EXISTS" not in str(error):
                    return f"creating topic {name}: {error}"
            created = ", ".join(
                f"{name} ({n} partition{'s' if n > 1 else ''})" for name, n in missing.items()
            )
            self._say(f"kafka: created topics {created}")
            topics = admin.list_topics(timeout=timeout_s).topics
            missing = {name: n for name, n in wanted.items() if name not in topics}
        if missing:
            return f"topics missing: {', '.join(missing)}"
        for name, n in wanted.items():
            have = len(topics[name].partitions)
            if have != n:
                return f"topic {name} has {have} partitions, expected {n} (`clean` to recreate)"
        return None

    # ----- stopping

    def _terminate(self, parts: Sequence[str]) -> None:
        """SIGTERM our processes, wait up to STOP_TIMEOUT_S, then SIGKILL; remove pid files."""
        pids: dict[str, int] = {}
        for part in parts:
            pid = self._running_pid(part)
            if pid is None:
                if self.pid_path(part).exists():
                    self.pid_path(part).unlink()
                self._say(f"{part}: not running")
                continue
            self._say(f"{part}: stopping (pid {pid}) ...")
            _signal(pid, signal.SIGTERM)
            pids[part] = pid
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for part, pid in pids.items():
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                self._say(f"{part}: still running after {STOP_TIMEOUT_S:.0f} s, sending SIGKILL")
                _signal(pid, signal.SIGKILL)
                kill_deadline = time.monotonic() + 5.0
                while _alive(pid) and time.monotonic() < kill_deadline:
                    time.sleep(0.1)
            self.pid_path(part).unlink(missing_ok=True)
            child = self._children.pop(part, None)
            if child is not None:
                child.poll()  # reap our own child so it does not linger as a zombie
            self._say(f"{part}: stopped")

    # ----- process identity

    def _running_pid(self, part: str) -> int | None:
        """The pid from our pid file if that process is alive and is the one we started."""
        try:
            pid = int(self.pid_path(part).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid):
            return None
        return pid if self._is_ours(part, pid) else None

    def _is_ours(self, part: str, pid: int) -> bool:
        argv = _cmdline(pid)
        if not argv:
            return False
        if part == "kafka":
            return "kafka.Kafka" in argv and str(self.kafka_properties) in argv
        if part == "ferretdb":
            return argv[0] == str(self.ferretdb_bin)
        if part == "redis":
            # redis-server rewrites its argv into a title ("redis-server 127.0.0.1:6379"), but it
            # chdirs into --dir, so its working directory identifies our instance.
            try:
                cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
            except OSError:
                return False
            return "redis-server" in argv[0] and cwd == self.data_dir("redis")
        return False

    def _foreign_listener(self, part: str) -> tuple[int, str] | None:
        """(port, who) if one of the part's ports is taken by a process we did not start."""
        for port in self.config.ports(part):
            if _port_free(port):
                continue
            pid = _listener_pid(port)
            if pid is None:
                return port, "another process"
            command = " ".join(" ".join(_cmdline(pid) or ["?"]).split())
            return port, f"pid {pid} ({command[:60]})"
        return None

    # ----- installation

    def _install(self, part: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        gitignore = self.root / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text(
                "# Local dev stack (deployments/local/stack.py): never commit.\n*\n"
            )
        {
            "kafka": self._install_kafka,
            "redis": self._install_redis,
            "ferretdb": self._install_ferretdb,
        }[part]()

    def _install_kafka(self) -> None:
        pom_hash = hashlib.sha256(KAFKA_POM.read_bytes()).hexdigest()
        stamp = self.kafka_libs / ".pom.sha256"
        if any(self.kafka_libs.glob("*.jar")) and stamp.exists() and stamp.read_text() == pom_hash:
            return
        version_match = re.search(
            r"<kafka\.version>([^<]+)</kafka\.version>", KAFKA_POM.read_text()
        )
        version = version_match.group(1) if version_match else "?"
        where = self._show(self.kafka_libs)
        self._say(f"installing Kafka {version} jars from Maven Central into {where} ...")
        partial = self.kafka_libs.with_name("libs.partial")
        shutil.rmtree(partial, ignore_errors=True)
        _run(
            [
                _which("mvn", "kafka"), "-q", "-B", "-f", str(KAFKA_POM),
                f"-Dmaven.repo.local={self.cache_dir / 'm2'}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={partial}", "-DincludeScope=runtime",
            ],
            part="kafka",
        )  # fmt: skip
        (partial / ".pom.sha256").write_text(pom_hash)
        shutil.rmtree(self.kafka_libs, ignore_errors=True)  # no stale jars on the classpath
        partial.rename(self.kafka_libs)

    def _install_redis(self) -> None:
        if shutil.which("redis-server"):
            return
        if os.geteuid() != 0:
            raise StackError(
                "redis-server is not installed and stack.py is not root; install it with "
                "`sudo apt-get install -y redis-server` (its system service is not used)",
                "redis",
            )
        self._say(
            "installing redis-server with apt-get (Debian package; its service is not used) ..."
        )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _run(["apt-get", "update", "-q"], part="redis", env=env)
        _run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "redis-server"],
            part="redis",
            env=env,
        )

    def _install_ferretdb(self) -> None:
        if (
            self._ferretdb_installed_version() == FERRETDB_VERSION
            and self._ferretdb_build_stamp() == FERRETDB_BUILD
        ):
            return
        go = _which("go", "ferretdb")
        self._say(
            f"building FerretDB {FERRETDB_VERSION} with go into {self._show(self.ferretdb_bin)}"
            " (seconds with a warm Go build cache, a few minutes on a fresh machine) ..."
        )
        # `go install module@version` builds a binary that panics at start: the module zip lacks
        # the generated build/version/version.txt. So build from a writable copy of the module
        # source with that file added (-overlay cannot replace files inside GOMODCACHE).
        env = self._go_env()
        listing = _run(
            [go, "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
            "ferretdb",
            env,
        )
        module_dir = Path(json.loads(listing)["Dir"])
        source = self.root / "src" / f"ferretdb-{FERRETDB_VERSION}"
        _rmtree_writable(source)
        shutil.copytree(module_dir, source)
        _make_writable(source)
        (source / "build" / "version" / "version.txt").write_text(f"{FERRETDB_VERSION}\n")
        for relative, original, replacement in FERRETDB_PATCHES:
            target = source / relative
            text = target.read_text()
            if text.count(original) != 1:
                raise StackError(
                    f"cannot apply a FerretDB patch: {relative} does not contain {original!r}"
                    " exactly once (was FERRETDB_VERSION changed without updating FERRETDB_PATCHES?)",
                    "ferretdb",
                )
            target.write_text(text.replace(original, replacement))
        self.ferretdb_bin.parent.mkdir(parents=True, exist_ok=True)
        partial = self.ferretdb_bin.with_name("ferretdb.partial")
        _run(
            [go, "build", "-buildvcs=false", "-o", str(partial), "./cmd/ferretdb"],
            "ferretdb",
            env,
            cwd=source,
        )
        partial.replace(self.ferretdb_bin)
        self._ferretdb_stamp_file.write_text(FERRETDB_BUILD + "\n")
        _rmtree_writable(source)
        with contextlib.suppress(OSError):
            source.parent.rmdir()  # src/ only exists during the build
        if self._ferretdb_installed_version() != FERRETDB_VERSION:
            raise StackError(
                f"the FerretDB build at {self.ferretdb_bin} does not report {FERRETDB_VERSION}",
                "ferretdb",
            )

    @property
    def _ferretdb_stamp_file(self) -> Path:
        return self.ferretdb_bin.with_name("ferretdb.build")

    def _ferretdb_build_stamp(self) -> str | None:
        try:
            return self._ferretdb_stamp_file.read_text().strip()
        except OSError:
            return None

    def _ferretdb_installed_version(self) -> str | None:
        if not self.ferretdb_bin.exists():
            return None
        try:
            result = subprocess.run(
                [str(self.ferretdb_bin), "--version"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            return None
        match = re.search(r"^version: (\S+)", result.stdout, re.MULTILINE)
        return match.group(1) if result.returncode == 0 and match else None

    # ----- helpers

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialize stack.py invocations on the same root (several people share one stack)."""
        if self._lock_depth == 0:
            (self.root / "run").mkdir(parents=True, exist_ok=True)
            self._lock_file = (self.root / "run" / "stack.lock").open("w")
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._say("waiting for another stack.py run on this stack to finish ...")
                fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0 and self._lock_file is not None:
                self._lock_file.close()  # releases the flock
                self._lock_file = None

    def _say(self, message: str) -> None:
        print(f"stack: {message}", file=self._out, flush=True)

    def _show(self, path: Path) -> str:
        """A path relative to the repo root when it is inside it (shorter progress lines)."""
        try:
            return str(path.relative_to(REPO_ROOT))
        except ValueError:
            return str(path)


# --------------------------------------------------------------------------- process helpers


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [arg.decode(errors="replace") for arg in raw.rstrip(b"\0").split(b"\0")] if raw else None


def _alive(pid: int) -> bool:
    """True if the process exists and has not exited (a zombie counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _port_free(port: int) -> bool:
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


def _listener_pid(port: int) -> int | None:
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


def _which(program: str, part: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise StackError(f"{program} is not on PATH (needed for {part})", part)
    return path


def _run(
    command: Sequence[str],
    part: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """Run an install command; on failure raise with the tail of its output."""
    result = subprocess.run(
        list(command), capture_output=True, text=True, env=env, cwd=cwd, check=False
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-LOG_TAIL_LINES:]
        raise StackError(
            f"installing {part} failed: `{' '.join(command)}` exited with {result.returncode}:\n"
            + "\n".join(output),
            part,
        )
    return result.stdout


def _make_writable(tree: Path) -> None:
    """Module-cache files are read-only; make a copied tree writable by its owner."""
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)


def _rmtree_writable(tree: Path) -> None:
    if tree.exists():
        _make_writable(tree)
        shutil.rmtree(tree)


def _kafka_uuid() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (Uuid.randomUuid)."""
    while True:
        encoded = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not encoded.startswith("-"):  # Kafka avoids ids that look like a CLI flag
            return encoded


_QUIET_LOGGER = logging.getLogger("votes.local_stack.librdkafka")
_QUIET_LOGGER.addHandler(logging.NullHandler())
_QUIET_LOGGER.propagate = False


def _quiet_kafka_config(bootstrap: str) -> dict[str, Any]:
    """AdminClient config that does not print librdkafka connection errors to stderr."""
    return {
        "bootstrap.servers": bootstrap,
        "socket.connection.setup.timeout.ms": 3000,
        "logger": _QUIET_LOGGER,
        "log_level": 0,
    }


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError as exc:
        return f"(cannot read log: {exc})\n"
    return "".join(line + "\n" for line in text.splitlines()[-lines:])


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stack.py",
        description="Local dev stack: Kafka (KRaft), Redis and FerretDB under .stack/.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="install what is missing (needs the network), start nothing")
    commands.add_parser("up", help="install what is missing, start everything, wait until healthy")
    commands.add_parser("down", help="stop everything this stack started (data kept)")
    commands.add_parser("status", help="one line per part; exit 0 if all healthy, 3 otherwise")
    commands.add_parser("clean", help="down, then delete data and logs (installed tools kept)")
    for name, text in (
        ("start", "start one part and wait until healthy"),
        ("stop", "stop one part"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("part", choices=PARTS)
    args = parser.parse_args(argv)

    try:
        stack = Stack()
        if args.command == "install":
            stack.install()
        elif args.command == "up":
            stack.up()
        elif args.command == "down":
            stack.down()
        elif args.command == "clean":
            stack.clean()
        elif args.command == "start":
            stack.start(args.part)
        elif args.command == "stop":
            stack.stop(args.part)
        elif args.command == "status":
            statuses = stack.status()
            for part_status in statuses:
                print(part_status.line())
            return 0 if all(s.healthy for s in statuses) else 3
    except StackError as exc:
        print(exc.report(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stack: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
