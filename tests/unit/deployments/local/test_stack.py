"""The local stack's pure parts: configuration, layout, command lines, patches, status lines.

Nothing here starts a process or opens a connection (tests/integration/test_stack.py checks a
running stack).
"""

import io
import os
from pathlib import Path

import pytest

from deployments.local.stack import (
    ALL_PARTS,
    PARTS,
    Config,
    PartStatus,
    Stack,
    StackError,
    installing,
    parts_for,
    postgresql,
    processes,
)
from deployments.local.stack.__main__ import build_parser
from deployments.local.stack.config import REPO_ROOT
from deployments.local.stack.ferretdb import (
    FERRETDB_BUILD,
    FERRETDB_PATCHES,
    FERRETDB_VERSION,
    FerretDB,
    apply_patches,
)
from deployments.local.stack.kafka import Kafka, kafka_cluster_id
from deployments.local.stack.postgresql import PostgreSQL, installed_bin_dir, server_user
from deployments.local.stack.redis import Redis


def config_for(root: Path, **env: str) -> Config:
    return Config.from_env({"VOTES_STACK_DIR": str(root), **env})


def quiet(_message: str) -> None:
    pass


def test_defaults_when_no_variable_is_set() -> None:
    config = Config.from_env({})
    assert config.root == REPO_ROOT / ".stack"
    assert (config.kafka_port, config.kafka_controller_port) == (9092, 9093)
    assert (config.redis_port, config.mongo_port, config.ferretdb_debug_port) == (6379, 27017, 8088)
    assert (config.kafka_topic, config.kafka_dlq_topic, config.kafka_partitions) == (
        "votes",
        "votes.dlq",
        6,
    )
    assert config.kafka_bootstrap == "127.0.0.1:9092"


def test_variables_override_and_derive(tmp_path: Path) -> None:
    config = config_for(
        tmp_path, VOTES_KAFKA_PORT="29092", VOTES_KAFKA_TOPIC="t", VOTES_FERRETDB_DEBUG_PORT="0"
    )
    assert config.root == tmp_path.resolve()
    assert config.kafka_controller_port == 29093  # Kafka port + 1 unless set
    assert config.kafka_dlq_topic == "t.dlq"
    assert config.ferretdb_debug_port == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VOTES_STACK_FERRETDB_BACKEND", "mysql"),
        ("VOTES_POSTGRES_PORT", "0"),
        ("VOTES_KAFKA_PORT", "abc"),
        ("VOTES_REDIS_PORT", "0"),
        ("VOTES_MONGO_PORT", "70000"),
        ("VOTES_FERRETDB_DEBUG_PORT", "-1"),
        ("VOTES_KAFKA_PARTITIONS", "0"),
        ("VOTES_KAFKA_PARTITIONS", "two"),
    ],
)
def test_bad_values_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(StackError, match=name):
        Config.from_env({name: value})


def test_layout_under_the_root(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    root = tmp_path.resolve()
    assert config.data_dir("kafka") == root / "data" / "kafka"
    assert config.log_path("redis") == root / "logs" / "redis.log"
    assert config.pid_path("ferretdb") == root / "run" / "ferretdb.pid"
    assert config.lock_path == root / "run" / "stack.lock"
    assert config.cache_dir == root / "cache"


def test_ports_per_part(tmp_path: Path) -> None:
    stack = Stack(config_for(tmp_path), out=io.StringIO())
    assert [stack.service(part).ports() for part in PARTS] == [(6379,), (27017, 8088), (9092, 9093)]
    no_debug = FerretDB(config_for(tmp_path, VOTES_FERRETDB_DEBUG_PORT="0"), quiet)
    assert no_debug.ports() == (27017,)
    with pytest.raises(StackError, match="unknown part 'mysql'"):
        stack.service("mysql")


def test_redis_command_line_is_durable_and_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(installing.shutil, "which", lambda program: f"/usr/bin/{program}")
    command = Redis(config_for(tmp_path, VOTES_REDIS_PORT="26379"), quiet).command()
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert command[0] == "/usr/bin/redis-server"
    assert options["--port"] == "26379" and options["--bind"] == "127.0.0.1"
    assert options["--dir"] == str(tmp_path.resolve() / "data" / "redis")
    assert (options["--appendonly"], options["--appendfsync"]) == ("yes", "always")


def test_redis_without_the_program_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(installing.shutil, "which", lambda program: None)
    with pytest.raises(StackError, match="redis-server is not on PATH"):
        Redis(config_for(tmp_path), quiet).command()


def test_ferretdb_command_line(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    service = FerretDB(config_for(tmp_path, VOTES_MONGO_PORT="27117"), quiet)
    assert service.command() == [
        str(root / "bin" / "ferretdb"),
        "--handler=sqlite",
        f"--sqlite-url=file:{root / 'data' / 'ferretdb'}/",
        f"--state-dir={root / 'state' / 'ferretdb'}",
        "--listen-addr=127.0.0.1:27117",
        "--debug-addr=127.0.0.1:8088",
        "--telemetry=disable",
        "--log-format=console",
    ]
    no_debug = FerretDB(config_for(tmp_path, VOTES_FERRETDB_DEBUG_PORT="0"), quiet)
    assert "--debug-addr=-" in no_debug.command()


def test_ferretdb_go_env_keeps_caches_under_the_stack(tmp_path: Path) -> None:
    env = FerretDB(config_for(tmp_path), quiet).go_env()
    cache = tmp_path.resolve() / "cache"
    assert env["GOMODCACHE"] == str(cache / "go" / "pkg" / "mod")
    assert env["GOCACHE"] == str(cache / "go-build")
    assert env["GOTOOLCHAIN"] == "local"


def test_kafka_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", "/opt/java")
    service = Kafka(config_for(tmp_path), quiet)
    command = service.command()
    assert command[0] == "/opt/java/bin/java"
    assert command[-2:] == ["kafka.Kafka", str(service.properties)]
    assert f"{service.libs}/*" in command
    assert service.is_ours(123, command)
    assert not service.is_ours(123, ["/opt/java/bin/java", "kafka.Kafka", "/elsewhere.properties"])


def test_ferretdb_is_ours_by_its_binary(tmp_path: Path) -> None:
    service = FerretDB(config_for(tmp_path), quiet)
    assert service.is_ours(123, service.command())
    assert not service.is_ours(123, ["/usr/local/bin/ferretdb", "--handler=sqlite"])


def test_ferretdb_build_stamp_names_version_and_patches() -> None:
    version, _, patches_hash = FERRETDB_BUILD.partition("+")
    assert version == FERRETDB_VERSION and len(patches_hash) == 12


def test_ferretdb_patch_applies_once_and_refuses_a_changed_source(tmp_path: Path) -> None:
    relative, original, replacement = FERRETDB_PATCHES[0]
    target = tmp_path / relative
    target.parent.mkdir(parents=True)
    target.write_text(f"package metadata\n\n{original}\n")
    apply_patches(tmp_path)
    assert target.read_text() == f"package metadata\n\n{replacement}\n"
    with pytest.raises(StackError, match="cannot apply a FerretDB patch"):
        apply_patches(tmp_path)  # the original line is gone now


def test_kafka_cluster_id_is_22_url_safe_characters() -> None:
    for _ in range(50):
        cluster_id = kafka_cluster_id()
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert set(cluster_id) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


def test_status_line() -> None:
    up = PartStatus("redis", True, 4242, 6379, True)
    assert up.line() == "redis     running  pid 4242    127.0.0.1:6379   healthy"
    down = PartStatus("kafka", False, None, 9092, False, "port 9092 is in use by x, not ours")
    assert down.line() == (
        "kafka     stopped  -           127.0.0.1:9092   NOT healthy"
        "  (port 9092 is in use by x, not ours)"
    )


def test_error_report_ends_with_the_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "kafka.log"
    log.write_text("".join(f"line {n}\n" for n in range(100)))
    report = StackError("kafka exited during startup", "kafka", log).report()
    assert report.startswith("stack: ERROR: kafka exited during startup\n")
    assert "line 79\n" not in report and "line 80\nline 81\n" in report and "line 99\n" in report
    assert StackError("plain").report() == "stack: ERROR: plain"


def test_pid_files_and_liveness(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    assert processes.read_pid(pid_file) is None
    pid_file.write_text("not a pid\n")
    assert processes.read_pid(pid_file) is None
    pid_file.write_text(f"{os.getpid()}\n")
    assert processes.read_pid(pid_file) == os.getpid()
    assert processes.alive(os.getpid())
    assert processes.cmdline(os.getpid())


def test_lock_is_reentrant_within_one_stack(tmp_path: Path) -> None:
    said: list[str] = []
    lock = processes.StackLock(tmp_path / "run" / "stack.lock", said.append)
    with lock.held(), lock.held():
        assert (tmp_path / "run" / "stack.lock").exists()
    assert said == []


def test_command_line_choices() -> None:
    parser = build_parser()
    assert parser.parse_args(["stop", "redis"]).part == "redis"
    for command in ("install", "up", "down", "status", "clean"):
        assert parser.parse_args([command]).command == command
    with pytest.raises(SystemExit):
        parser.parse_args(["start", "mysql"])


# ---- FerretDB's backend: SQLite (the default) or a private PostgreSQL cluster -------------------


def postgres_config(root: Path, **env: str) -> Config:
    return config_for(root, VOTES_STACK_FERRETDB_BACKEND="postgresql", **env)


def test_the_backend_is_sqlite_unless_postgresql_is_asked_for(tmp_path: Path) -> None:
    assert Config.from_env({}).ferretdb_backend == "sqlite"
    assert Config.from_env({}).postgres_port == 5433
    assert parts_for(config_for(tmp_path)) == PARTS == ("redis", "ferretdb", "kafka")
    config = postgres_config(tmp_path, VOTES_POSTGRES_PORT="25433")
    assert (config.ferretdb_backend, config.postgres_port) == ("postgresql", 25433)
    stack = Stack(config, out=io.StringIO())
    assert stack.parts == ALL_PARTS == ("redis", "postgresql", "ferretdb", "kafka")
    assert stack.service("postgresql").ports() == (25433,)


def test_ferretdb_on_postgresql_connects_to_the_private_cluster(tmp_path: Path) -> None:
    command = FerretDB(postgres_config(tmp_path, VOTES_POSTGRES_PORT="25433"), quiet).command()
    assert command[1:3] == [
        "--handler=postgresql",
        "--postgresql-url=postgres://postgres@127.0.0.1:25433/ferretdb",
    ]
    assert not any(arg.startswith("--sqlite-url") for arg in command)


def fake_postgres_install(root: Path, *majors: str) -> None:
    for major in majors:
        (root / major / "bin").mkdir(parents=True)
        (root / major / "bin" / "postgres").write_text("")


def test_the_newest_installed_postgresql_is_used(tmp_path: Path) -> None:
    assert installed_bin_dir(tmp_path / "none") is None
    fake_postgres_install(tmp_path, "9", "15", "13")
    (tmp_path / "common" / "bin").mkdir(parents=True)  # not a version
    assert installed_bin_dir(tmp_path) == tmp_path / "15" / "bin"


def test_postgresql_command_line_is_private_durable_and_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_postgres_install(tmp_path / "usr", "15")
    monkeypatch.setattr(postgresql, "POSTGRES_ROOT", tmp_path / "usr")
    service = PostgreSQL(postgres_config(tmp_path / "stack", VOTES_POSTGRES_PORT="25433"), quiet)
    command = service.command()
    cluster = tmp_path.resolve() / "stack" / "data" / "postgresql" / "cluster"
    assert command[:7] == [
        str(tmp_path / "usr" / "15" / "bin" / "postgres"),
        "-D",
        str(cluster),
        "-p",
        "25433",
        "-k",
        str(cluster.parent / "socket"),
    ]
    settings = {command[i + 1] for i, arg in enumerate(command) if arg == "-c"}
    assert {"listen_addresses=127.0.0.1", "fsync=on", "synchronous_commit=on"} <= settings
    assert service.is_ours(123, command)
    assert not service.is_ours(123, ["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/x"])
    assert service.url() == "postgres://postgres@127.0.0.1:25433/ferretdb"


def test_postgresql_missing_names_the_install_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgresql, "POSTGRES_ROOT", tmp_path / "nothing")
    with pytest.raises(StackError, match="PostgreSQL is not installed"):
        PostgreSQL(postgres_config(tmp_path), quiet).command()


def test_postgresql_runs_as_the_package_user_only_when_we_are_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(postgresql.os, "geteuid", lambda: 1000)
    assert server_user() is None
    monkeypatch.setattr(postgresql.os, "geteuid", lambda: 0)
    monkeypatch.setattr(postgresql.pwd, "getpwnam", lambda name: object())
    assert server_user() == "postgres"

    def no_such_user(name: str) -> object:
        raise KeyError(name)

    monkeypatch.setattr(postgresql.pwd, "getpwnam", no_such_user)
    with pytest.raises(StackError, match="cannot run as root"):
        server_user()


def test_the_command_line_can_start_and_stop_postgresql() -> None:
    assert build_parser().parse_args(["start", "postgresql"]).part == "postgresql"


def test_down_also_stops_a_part_of_the_other_backend_that_still_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Brought up with VOTES_STACK_FERRETDB_BACKEND=postgresql, taken down without it.
    stack = Stack(config_for(tmp_path), out=io.StringIO())
    running = {"postgresql": 4242}
    monkeypatch.setattr(stack, "_running_pid", lambda part: running.get(part))
    assert stack._stoppable() == ["kafka", "ferretdb", "postgresql", "redis"]
    running.clear()
    assert stack._stoppable() == ["kafka", "ferretdb", "redis"]
