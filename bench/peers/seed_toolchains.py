"""The seed peers' toolchains: Go and Cargo as the local stack installs them, and why either is
missing here (then that peer is skipped with the reason)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench.harness.env import PY, ROOT
from deployments.local.stack import installing
from deployments.local.stack.config import Config

RUST_TARGET_DIR = ROOT / ".bench-build" / "rust"
RUST_MANIFEST = ROOT / "bench" / "peers" / "seed_rust_http" / "Cargo.toml"


def _show(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(ROOT))
    return str(path)


def stack_cache_dir() -> Path:
    """The local stack's cache folder (.stack/cache, or under VOTES_STACK_DIR): Go's and Cargo's."""
    return Config.from_env().cache_dir


def go_env() -> dict[str, str]:
    """Go's environment, exactly as the local stack builds FerretDB."""
    return installing.go_env(stack_cache_dir())


def cargo_env() -> dict[str, str]:
    return {
        **os.environ,
        "CARGO_TARGET_DIR": str(RUST_TARGET_DIR),
        "CARGO_HOME": str(stack_cache_dir() / "cargo"),
    }


def go_missing() -> str | None:
    """Why the Go peers cannot be built here, or None."""
    if shutil.which("go") is None:
        return "go not found on PATH"
    if importlib.util.find_spec("grpc_tools") is None:
        return f"grpc_tools (protoc) not importable by {PY}"
    return None


def rust_missing() -> str | None:
    """Why the Rust peer cannot be built here, or None."""
    if not RUST_MANIFEST.is_file():
        return f"{_show(RUST_MANIFEST)} not found"
    cargo = shutil.which("cargo")
    if cargo is None:
        return "cargo not found on PATH"
    # ~/.cargo/bin/cargo is usually rustup's proxy, which finds its toolchains in RUSTUP_HOME
    # (default ~/.rustup): without either it fails with a confusing message.
    proxy = (
        Path(cargo).resolve().name.startswith("rustup") or (Path(cargo).parent / "rustup").exists()
    )
    if proxy and not os.environ.get("RUSTUP_HOME") and not (Path.home() / ".rustup").is_dir():
        return (
            f"cargo at {cargo} is rustup's proxy, but RUSTUP_HOME is unset and "
            f"{Path.home() / '.rustup'} does not exist: no Rust toolchain to use"
        )
    return None


def tool_version(argv: Sequence[str], env: dict[str, str]) -> str | None:
    """The first line `argv` prints (e.g. `go version`), or None when it fails."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            list(argv), env=env, capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip().splitlines()[0]
    return None
