"""The seed peers' builds: the original stack's servers, rebuilt to our contract, compiled here.

Three binaries, each run next to our Ray Serve ingress by `make bench` (bench/scenarios/peers.py):

- `seed_rust_http` (bench/peers/seed_rust_http, cargo): the seed's `POST /rust/insert` server.
- `seed_go_grpc` (bench/peers/seed_go, go): votes.v1.VoteService Cast/CastBatch, producing to Kafka.
- `seed_go_http_client` (same module): the seed's `POST /grpc/insert` hop, HTTP -> gRPC Cast.

`build()` compiles them once into the ignored `.bench-build/` and reuses them while their sources
are unchanged (a stamp holds a hash of the sources and the toolchain's version). A missing tool or
a failed build skips that peer with a one-line reason; the rest of the benchmark still runs.
`built()` answers the same question without compiling anything (for tests). Launching them:
bench/peers/seed.py. Why this shape: docs/decisions/0016-seed-peers.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from bench.harness.env import PY, ROOT, log
from bench.peers.seed_toolchains import (
    RUST_MANIFEST,
    RUST_TARGET_DIR,
    _show,
    cargo_env,
    go_env,
    go_missing,
    rust_missing,
    tool_version,
)

PEERS = ("seed_rust_http", "seed_go_grpc", "seed_go_http_client")
GO_PEERS = ("seed_go_grpc", "seed_go_http_client")

BUILD_DIR = ROOT / ".bench-build"
STAMP_DIR = BUILD_DIR / "stamps"
BUILD_LOG_DIR = BUILD_DIR / "logs"
GO_BIN_DIR = BUILD_DIR / "go" / "bin"
GO_TOOLS_DIR = BUILD_DIR / "go" / "tools"

PROTO = ROOT / "proto" / "votes.proto"
GO_MODULE = ROOT / "bench" / "peers" / "seed_go"
GO_IMPORT_PATH = "votes/bench/seed_go"
# Generated from PROTO by every build, git-ignored (bench/peers/seed_go/.gitignore).
GO_STUBS = GO_MODULE / "internal" / "votespb"
# The protoc plugins, at the versions pinned by the module's `tool` lines (go.mod, go.sum).
GO_PLUGINS = (
    "google.golang.org/protobuf/cmd/protoc-gen-go",
    "google.golang.org/grpc/cmd/protoc-gen-go-grpc",
)
# Part of the Go stamp: changing how the stubs are generated or built rebuilds the binaries.
GO_RECIPE = "protoc paths=source_relative M-mapped votes.proto; go build -trimpath; v1"

RUST_CRATE = ROOT / "bench" / "peers" / "seed_rust_http"

BUILD_TIMEOUT_S = 30 * 60.0  # a cold Rust release build on a busy 2-core machine takes minutes
HEARTBEAT_S = 30.0

Progress = Callable[[str], None]


def binary_path(name: str) -> Path:
    """Where `build()` puts the binary of peer `name`."""
    if name == "seed_rust_http":
        return RUST_TARGET_DIR / "release" / name
    if name in GO_PEERS:
        return GO_BIN_DIR / name
    raise ValueError(f"unknown seed peer {name!r}: expected one of {', '.join(PEERS)}")


# ---- what a build depends on -------------------------------------------------------------


def go_sources() -> list[Path]:
    """The Go module's own sources (not the generated stubs) and the proto they are made from."""
    files = [
        path
        for path in GO_MODULE.rglob("*")
        if path.is_file()
        and GO_STUBS not in path.parents
        and (path.suffix == ".go" or path.name in ("go.mod", "go.sum"))
    ]
    return [*files, PROTO]


def rust_sources() -> list[Path]:
    """Every file of the crate but its build output, notes and hidden files."""
    return [
        path
        for path in RUST_CRATE.rglob("*")
        if path.is_file()
        and path.suffix != ".md"
        and not any(
            part == "target" or part.startswith(".") for part in path.relative_to(RUST_CRATE).parts
        )
    ]


def source_digest(files: Iterable[Path], recipe: str = "") -> str:
    """A hash of the files' paths (relative to the repo) and contents, and of the recipe."""
    digest = hashlib.sha256(recipe.encode())
    for path in sorted(files):
        digest.update(b"\0" + _show(path).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _group_of(name: str) -> str:
    binary_path(name)  # raises on an unknown name
    return "seed_go" if name in GO_PEERS else "seed_rust_http"


def _current_digest(group: str) -> str:
    if group == "seed_go":
        return source_digest(go_sources(), GO_RECIPE)
    return source_digest(rust_sources())


def _stamp_path(group: str) -> Path:
    return STAMP_DIR / f"{group}.json"


def read_stamp(group: str) -> dict[str, str] | None:
    with contextlib.suppress(OSError, ValueError):
        stamp = json.loads(_stamp_path(group).read_text())
        if isinstance(stamp, dict):
            return {str(key): str(value) for key, value in stamp.items()}
    return None


def write_stamp(group: str, digest: str, toolchain: str) -> None:
    STAMP_DIR.mkdir(parents=True, exist_ok=True)
    partial = _stamp_path(group).with_suffix(".partial")
    partial.write_text(json.dumps({"sources": digest, "toolchain": toolchain}) + "\n")
    partial.replace(_stamp_path(group))


def is_current(group: str, digest: str, toolchain: str | None, binaries: Sequence[Path]) -> bool:
    """Whether the binaries exist and were built from these sources (and this toolchain, if
    given)."""
    stamp = read_stamp(group)
    if stamp is None or stamp.get("sources") != digest:
        return False
    if toolchain is not None and stamp.get("toolchain") != toolchain:
        return False
    return all(path.is_file() and os.access(path, os.X_OK) for path in binaries)


def built(name: str) -> Path | str:
    """The binary of peer `name` when it was built from the current sources, else why not.

    Compiles nothing: what a test or the benchmark uses to decide whether to skip a peer.
    """
    group = _group_of(name)
    binary = binary_path(name)
    if group == "seed_rust_http" and not RUST_MANIFEST.is_file():
        return f"{_show(RUST_MANIFEST)} not found: {name} skipped"
    if not binary.is_file():
        return f"{name} not built ({_show(binary)} missing): run `make bench-peers`"
    if not is_current(group, _current_digest(group), None, [binary]):
        return f"{name} was built from other sources than the current ones: run `make bench-peers`"
    return binary


# ---- building ----------------------------------------------------------------------------


class BuildFailed(RuntimeError):
    """A build step failed; the message is one line, the step's log has the rest."""


class FailedBuild(str):
    """The skip reason of a peer whose build failed (not one whose toolchain is missing)."""

    __slots__ = ()


def run_step(
    what: str,
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    progress: Progress,
    timeout_s: float = BUILD_TIMEOUT_S,
) -> None:
    """Run one build step with its output in .bench-build/logs/, saying how long it takes."""
    BUILD_LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = BUILD_LOG_DIR / f"{what.replace(' ', '_')}.log"
    started = time.monotonic()
    with open(log_path, "wb") as output:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        next_heartbeat = started + HEARTBEAT_S
        while process.poll() is None:
            now = time.monotonic()
            if now - started > timeout_s:
                process.kill()
                process.wait()
                raise BuildFailed(
                    f"{what} did not finish within {timeout_s:.0f} s (log: {log_path})"
                )
            if now >= next_heartbeat:
                progress(f"  {what}: still running ({now - started:.0f} s)")
                next_heartbeat += HEARTBEAT_S
            time.sleep(0.2)
    elapsed = time.monotonic() - started
    if process.returncode != 0:
        lines = log_path.read_text(errors="replace").splitlines()
        progress(
            f"  {what}: FAILED (exit {process.returncode}) after {elapsed:.1f} s; "
            f"last lines of {_show(log_path)}:"
        )
        for line in lines[-20:]:
            progress(f"    {line}")
        last = next((line.strip() for line in reversed(lines) if line.strip()), "no output")
        raise BuildFailed(f"{what} failed (exit {process.returncode}): {last[:200]}")
    progress(f"  {what}: done in {elapsed:.1f} s")


def generate_go_stubs(env: dict[str, str], progress: Progress) -> None:
    """proto/votes.proto -> bench/peers/seed_go/internal/votespb (protoc from grpc_tools)."""
    GO_TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    run_step(
        "go build protoc plugins",
        ["go", "build", "-o", f"{GO_TOOLS_DIR}/", *GO_PLUGINS],
        env=env,
        cwd=GO_MODULE,
        progress=progress,
    )
    shutil.rmtree(GO_STUBS, ignore_errors=True)
    GO_STUBS.mkdir(parents=True)
    mapping = f"Mvotes.proto={GO_IMPORT_PATH}/internal/votespb"
    run_step(
        "protoc go stubs",
        [
            PY,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO.parent}",
            f"--plugin=protoc-gen-go={GO_TOOLS_DIR / 'protoc-gen-go'}",
            f"--plugin=protoc-gen-go-grpc={GO_TOOLS_DIR / 'protoc-gen-go-grpc'}",
            f"--go_out={GO_STUBS}",
            "--go_opt=paths=source_relative",
            f"--go_opt={mapping}",
            f"--go-grpc_out={GO_STUBS}",
            "--go-grpc_opt=paths=source_relative",
            f"--go-grpc_opt={mapping}",
            PROTO.name,
        ],
        env=env,
        cwd=ROOT,
        progress=progress,
    )


def build_go(progress: Progress) -> dict[str, Path | str]:
    missing = go_missing()
    if missing:
        return {name: f"{missing}: {name} skipped" for name in GO_PEERS}
    env = go_env()
    toolchain = tool_version(["go", "version"], env) or "go (version unknown)"
    digest = _current_digest("seed_go")
    binaries = [binary_path(name) for name in GO_PEERS]
    if is_current("seed_go", digest, toolchain, binaries):
        progress(f"seed_go: up to date ({', '.join(map(_show, binaries))})")
        return dict(zip(GO_PEERS, binaries, strict=True))
    progress(
        f"seed_go: building {', '.join(GO_PEERS)} with {toolchain} into {_show(GO_BIN_DIR)} "
        "(a minute or more with a cold Go cache) ..."
    )
    started = time.monotonic()
    _stamp_path("seed_go").unlink(missing_ok=True)  # a half-finished build never counts as current
    try:
        generate_go_stubs(env, progress)
        GO_BIN_DIR.mkdir(parents=True, exist_ok=True)
        run_step(
            "go build seed peers",
            [
                "go",
                "build",
                "-trimpath",
                "-o",
                f"{GO_BIN_DIR}/",
                *(f"./cmd/{name}" for name in GO_PEERS),
            ],
            env=env,
            cwd=GO_MODULE,
            progress=progress,
        )
    except BuildFailed as failure:
        return {name: FailedBuild(f"{failure}: {name} skipped") for name in GO_PEERS}
    write_stamp("seed_go", digest, toolchain)
    progress(f"seed_go: built in {time.monotonic() - started:.1f} s")
    return dict(zip(GO_PEERS, binaries, strict=True))


def build_rust(progress: Progress) -> dict[str, Path | str]:
    name = "seed_rust_http"
    missing = rust_missing()
    if missing:
        return {name: f"{missing}: {name} skipped"}
    env = cargo_env()
    toolchain = tool_version(["rustc", "--version"], env)
    if toolchain is None:
        return {name: f"`rustc --version` fails: no usable Rust toolchain: {name} skipped"}
    digest = _current_digest(name)
    binary = binary_path(name)
    if is_current(name, digest, toolchain, [binary]):
        progress(f"{name}: up to date ({_show(binary)})")
        return {name: binary}
    progress(
        f"{name}: building with {toolchain} into {_show(RUST_TARGET_DIR)} "
        "(minutes on a cold cache) ..."
    )
    started = time.monotonic()
    _stamp_path(name).unlink(missing_ok=True)
    try:
        run_step(
            "cargo build seed_rust_http",
            [
                "cargo",
                "build",
                "--release",
                "--locked",
                "--manifest-path",
                str(RUST_MANIFEST),
            ],
            env=env,
            cwd=ROOT,
            progress=progress,
        )
    except BuildFailed as failure:
        return {name: FailedBuild(f"{failure}: {name} skipped")}
    if not binary.is_file():
        return {name: FailedBuild(f"cargo built no {_show(binary)}: {name} skipped")}
    write_stamp(name, digest, toolchain)
    progress(f"{name}: built in {time.monotonic() - started:.1f} s")
    return {name: binary}


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time (the benchmark and `make bench-peers` may overlap)."""
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with open(BUILD_DIR / "seed_peers.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build(progress: Progress = log) -> dict[str, Path | str]:
    """Each peer's binary, or a one-line reason it is skipped; compiles only what changed.

    A reason is a FailedBuild when the build failed, a plain str when a tool is missing.
    """
    with _build_lock():
        results = {**build_rust(progress), **build_go(progress)}
    return {name: results[name] for name in PEERS}
