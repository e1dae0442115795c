"""The seed peers (bench/peers/seed_build.py, seed_toolchains.py, seed.py) without compilers or
services: skip reasons, stamps, command lines, start."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from bench.peers import seed, seed_build, seed_toolchains


@pytest.fixture
def build_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every output folder of the seed builds under tmp_path, never the repo's .bench-build/."""
    build = tmp_path / "build"
    monkeypatch.setattr(seed_build, "BUILD_DIR", build)
    monkeypatch.setattr(seed_build, "STAMP_DIR", build / "stamps")
    monkeypatch.setattr(seed_build, "BUILD_LOG_DIR", build / "logs")
    monkeypatch.setattr(seed_build, "GO_BIN_DIR", build / "go" / "bin")
    monkeypatch.setattr(seed_build, "GO_TOOLS_DIR", build / "go" / "tools")
    for module in (seed_build, seed_toolchains):
        monkeypatch.setattr(module, "RUST_TARGET_DIR", build / "rust")
    return build


@pytest.fixture
def go_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small Go module and proto standing in for bench/peers/seed_go and proto/votes.proto."""
    module = tmp_path / "seed_go"
    (module / "cmd" / "x").mkdir(parents=True)
    (module / "cmd" / "x" / "main.go").write_text("package main\n")
    (module / "go.mod").write_text("module x\n")
    (module / "go.sum").write_text("")
    (module / "README.md").write_text("notes\n")
    stubs = module / "internal" / "votespb"
    stubs.mkdir(parents=True)
    (stubs / "votes.pb.go").write_text("package votespb // generated\n")
    proto = tmp_path / "votes.proto"
    proto.write_text('syntax = "proto3";\n')
    monkeypatch.setattr(seed_build, "GO_MODULE", module)
    monkeypatch.setattr(seed_build, "GO_STUBS", stubs)
    monkeypatch.setattr(seed_build, "PROTO", proto)
    return module


def no_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seed_toolchains.shutil, "which", lambda name, *a, **k: None)


def executable(path: Path, text: str = "#!/bin/sh\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# ---- skip reasons ------------------------------------------------------------------------


def test_without_go_and_cargo_every_peer_is_skipped_with_its_reason(
    build_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_tools(monkeypatch)
    progress: list[str] = []
    results = seed_build.build(progress.append)
    assert list(results) == list(seed_build.PEERS)
    assert results["seed_go_grpc"] == "go not found on PATH: seed_go_grpc skipped"
    assert results["seed_go_http_client"] == "go not found on PATH: seed_go_http_client skipped"
    rust = results["seed_rust_http"]
    assert isinstance(rust, str) and rust.endswith(": seed_rust_http skipped")
    assert "cargo not found" in rust or "Cargo.toml not found" in rust
    # A missing toolchain is a skip, not a failed build: `make bench-peers` still exits 0.
    assert not any(isinstance(r, seed_build.FailedBuild) for r in results.values())


def test_cargo_missing_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = tmp_path / "Cargo.toml"
    manifest.write_text("[package]\n")
    for module in (seed_build, seed_toolchains):
        monkeypatch.setattr(module, "RUST_MANIFEST", manifest)
    no_tools(monkeypatch)
    assert seed_build.build_rust(print) == {
        "seed_rust_http": "cargo not found on PATH: seed_rust_http skipped"
    }


def test_a_missing_crate_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (seed_build, seed_toolchains):
        monkeypatch.setattr(module, "RUST_MANIFEST", tmp_path / "absent" / "Cargo.toml")
    reason = seed_build.build_rust(print)["seed_rust_http"]
    assert isinstance(reason, str) and "Cargo.toml not found" in reason


def test_rustup_proxy_without_a_rustup_home_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "Cargo.toml"
    manifest.write_text("[package]\n")
    bin_dir = tmp_path / "cargo-home" / "bin"
    rustup = executable(bin_dir / "rustup")
    (bin_dir / "cargo").symlink_to(rustup)
    home = tmp_path / "home"
    home.mkdir()
    for module in (seed_build, seed_toolchains):
        monkeypatch.setattr(module, "RUST_MANIFEST", manifest)
    monkeypatch.setattr(
        seed_toolchains.shutil,
        "which",
        lambda name, *a, **k: str(bin_dir / name) if name == "cargo" else None,
    )
    monkeypatch.delenv("RUSTUP_HOME", raising=False)
    monkeypatch.setattr(seed_toolchains.Path, "home", classmethod(lambda cls: home))
    reason = seed_toolchains.rust_missing()
    assert reason is not None and "RUSTUP_HOME is unset" in reason
    assert str(home / ".rustup") in reason
    (home / ".rustup").mkdir()
    assert seed_toolchains.rust_missing() is None


def test_go_without_grpc_tools_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seed_toolchains.shutil, "which", lambda name, *a, **k: "/usr/bin/" + name)
    monkeypatch.setattr(seed_toolchains.importlib.util, "find_spec", lambda name: None)
    expected = f"grpc_tools (protoc) not importable by {seed_toolchains.PY}"
    assert seed_toolchains.go_missing() == expected


# ---- stamps and reuse --------------------------------------------------------------------


def test_source_digest_follows_contents_and_names_not_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a.go", tmp_path / "b.go"
    a.write_text("one")
    b.write_text("two")
    first = seed_build.source_digest([a, b], "recipe")
    assert seed_build.source_digest([b, a], "recipe") == first
    assert seed_build.source_digest([a, b], "other recipe") != first
    b.write_text("three")
    assert seed_build.source_digest([a, b], "recipe") != first
    b.write_text("two")
    b.rename(tmp_path / "c.go")
    assert seed_build.source_digest([a, tmp_path / "c.go"], "recipe") != first


def test_go_sources_leave_out_generated_stubs_and_notes(go_module: Path) -> None:
    names = {path.name for path in seed_build.go_sources()}
    assert names == {"main.go", "go.mod", "go.sum", "votes.proto"}


def test_is_current_needs_same_sources_toolchain_and_binaries(build_dir: Path) -> None:
    binary = executable(build_dir / "bin" / "peer")
    seed_build.write_stamp("seed_go", "digest-1", "go1.26")
    assert seed_build.is_current("seed_go", "digest-1", "go1.26", [binary])
    assert seed_build.is_current("seed_go", "digest-1", None, [binary])  # toolchain not asked
    assert not seed_build.is_current("seed_go", "digest-2", "go1.26", [binary])
    assert not seed_build.is_current("seed_go", "digest-1", "go1.27", [binary])
    assert not seed_build.is_current("seed_go", "digest-1", "go1.26", [binary, build_dir / "gone"])
    binary.chmod(0o644)
    assert not seed_build.is_current("seed_go", "digest-1", "go1.26", [binary])
    (build_dir / "stamps" / "seed_go.json").write_text("not json")
    assert seed_build.read_stamp("seed_go") is None


class FakeGo:
    """Stands in for run_step: records the steps, makes the binaries a go build would."""

    def __init__(self) -> None:
        self.steps: list[list[str]] = []

    def __call__(self, what: str, argv: list[str], **_: object) -> None:
        self.steps.append([str(part) for part in argv])
        if what == "go build seed peers":
            for name in seed_build.GO_PEERS:
                executable(seed_build.GO_BIN_DIR / name)


def fake_go_toolchain(
    monkeypatch: pytest.MonkeyPatch, version: str = "go version go1.26.8"
) -> FakeGo:
    monkeypatch.setattr(seed_build, "go_missing", lambda: None)
    monkeypatch.setattr(seed_build, "tool_version", lambda argv, env: version)
    fake = FakeGo()
    monkeypatch.setattr(seed_build, "run_step", fake)
    return fake


def test_go_builds_once_then_reuses_until_a_source_changes(
    build_dir: Path, go_module: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_go_toolchain(monkeypatch)
    first = seed_build.build_go(print)
    assert first == {name: build_dir / "go" / "bin" / name for name in seed_build.GO_PEERS}
    assert [step[:2] for step in fake.steps] == [
        ["go", "build"],
        [seed_toolchains.PY, "-m"],
        ["go", "build"],
    ]
    assert fake.steps[2][-2:] == ["./cmd/seed_go_grpc", "./cmd/seed_go_http_client"]

    fake.steps.clear()
    assert seed_build.build_go(print) == first
    assert fake.steps == []  # reused: nothing ran

    (go_module / "README.md").write_text("other notes\n")  # not a source
    assert seed_build.build_go(print) == first and fake.steps == []

    (go_module / "cmd" / "x" / "main.go").write_text("package main // changed\n")
    seed_build.build_go(print)
    assert len(fake.steps) == 3


def test_a_new_go_toolchain_rebuilds(
    build_dir: Path, go_module: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_go_toolchain(monkeypatch, "go version go1.26.8")
    seed_build.build_go(print)
    fake = fake_go_toolchain(monkeypatch, "go version go1.27.0")
    seed_build.build_go(print)
    assert len(fake.steps) == 3


def test_a_failed_build_is_a_skip_and_a_failing_exit(
    build_dir: Path, go_module: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_go_toolchain(monkeypatch)
    seed_build.build_go(print)

    def fail(what: str, argv: list[str], **_: object) -> None:
        raise seed_build.BuildFailed(f"{what} failed (exit 1): syntax error")

    monkeypatch.setattr(seed_build, "run_step", fail)
    (go_module / "cmd" / "x" / "main.go").write_text("package main }\n")
    results = seed_build.build_go(print)
    failure = "go build protoc plugins failed (exit 1): syntax error"
    assert results == {name: f"{failure}: {name} skipped" for name in seed_build.GO_PEERS}
    assert all(isinstance(reason, seed_build.FailedBuild) for reason in results.values())
    assert seed_build.read_stamp("seed_go") is None  # the old binaries no longer count as current

    monkeypatch.setattr(seed_build, "build_rust", lambda progress: {"seed_rust_http": "no cargo"})
    assert seed.main(["build"]) == 1


def test_run_step_reports_the_tail_of_a_failing_command(build_dir: Path, tmp_path: Path) -> None:
    progress: list[str] = []
    script = "import sys\nfor i in range(30): print('line', i)\nsys.exit(3)"
    with pytest.raises(seed_build.BuildFailed, match=r"compile x failed \(exit 3\): line 29"):
        seed_build.run_step(
            "compile x",
            [sys.executable, "-c", script],
            env=dict(os.environ),
            cwd=tmp_path,
            progress=progress.append,
        )
    assert "line 29" in progress[-1] and any("FAILED (exit 3)" in line for line in progress)
    assert not any(line.strip() == "line 5" for line in progress)  # only the tail


def test_built_compiles_nothing_and_says_why_not(
    build_dir: Path, go_module: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = seed_build.built("seed_go_grpc")
    assert isinstance(reason, str) and "make bench-peers" in reason
    fake_go_toolchain(monkeypatch)
    seed_build.build_go(print)
    assert seed_build.built("seed_go_grpc") == build_dir / "go" / "bin" / "seed_go_grpc"
    (go_module / "go.mod").write_text("module y\n")
    stale = seed_build.built("seed_go_grpc")
    assert isinstance(stale, str) and "other sources" in stale


# ---- command lines and launching ---------------------------------------------------------


def test_command_lines() -> None:
    grpc = seed.command("seed_go_grpc", port=20060, bootstrap="127.0.0.1:9092", topic="t1")
    assert grpc == [
        str(seed_build.binary_path("seed_go_grpc")),
        "--listen",
        "127.0.0.1:20060",
        "--bootstrap",
        "127.0.0.1:9092",
        "--topic",
        "t1",
    ]
    client = seed.command(
        "seed_go_http_client", port=20061, upstream="127.0.0.1:20060", topic="ignored"
    )
    assert client == [
        str(seed_build.binary_path("seed_go_http_client")),
        "--listen",
        "127.0.0.1:20061",
        "--upstream",
        "127.0.0.1:20060",
    ]
    rust = seed.command("seed_rust_http", port=20062, topic="t2")
    assert rust[0].endswith(".bench-build/rust/release/seed_rust_http")
    assert rust[1:] == [
        "--listen",
        "127.0.0.1:20062",
        "--bootstrap",
        seed.KAFKA,
        "--topic",
        "t2",
    ]


def test_command_lines_refuse_what_is_missing() -> None:
    with pytest.raises(ValueError, match="upstream"):
        seed.command("seed_go_http_client", port=1)
    with pytest.raises(ValueError, match="topic"):
        seed.command("seed_go_grpc", port=1)
    with pytest.raises(ValueError, match="unknown seed peer 'seed_java'"):
        seed.command("seed_java", port=1, topic="t")


def test_start_waits_for_the_listening_line(tmp_path: Path) -> None:
    script = (
        "import sys, time\ntime.sleep(0.3)\n"
        "print('seed_go_grpc listening on', sys.argv[2], flush=True)\ntime.sleep(60)\n"
    )
    fake = executable(tmp_path / "peer", f"#!{sys.executable}\n{script}")
    proc = seed.start(
        "seed_go_grpc",
        port=20069,
        topic="t",
        binary=fake,
        log_path=tmp_path / "peer.log",
        timeout_s=20,
    )
    try:
        assert proc.alive() and "listening on 127.0.0.1:20069" in proc.tail()
    finally:
        proc.stop(grace_s=5)
    assert not proc.alive()


def test_start_reports_a_peer_that_dies(tmp_path: Path) -> None:
    fake = executable(
        tmp_path / "peer",
        f"#!{sys.executable}\nimport sys\n"
        "print('seed_go_grpc: kafka unreachable', file=sys.stderr)\nsys.exit(1)\n",
    )
    with pytest.raises(RuntimeError, match=r"(?s)exited with status 1.*kafka unreachable"):
        seed.start(
            "seed_go_grpc",
            port=20069,
            topic="t",
            binary=fake,
            log_path=tmp_path / "peer.log",
            timeout_s=20,
        )


def test_start_without_a_binary_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make bench-peers"):
        seed.start("seed_go_grpc", port=20069, topic="t", binary=tmp_path / "absent")
