"""Helpers for the install steps: find a program, run a command, handle read-only module trees."""

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from deployments.local.stack.errors import LOG_TAIL_LINES, StackError


def which(program: str, part: str) -> str:
    """The program's path on PATH; a StackError naming the part that needs it if missing."""
    path = shutil.which(program)
    if path is None:
        raise StackError(f"{program} is not on PATH (needed for {part})", part)
    return path


def run(
    command: Sequence[str],
    part: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> str:
    """Run an install command and return its stdout; on failure raise with its output's tail.

    `user`: run it as this user (PostgreSQL's initdb refuses root).
    """
    result = subprocess.run(
        list(command), capture_output=True, text=True, env=env, cwd=cwd, check=False, user=user
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-LOG_TAIL_LINES:]
        raise StackError(
            f"installing {part} failed: `{' '.join(command)}` exited with {result.returncode}:\n"
            + "\n".join(output),
            part,
        )
    return result.stdout


def make_writable(tree: Path) -> None:
    """Module-cache files are read-only; make a copied tree writable by its owner."""
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)


def rmtree_writable(tree: Path) -> None:
    if tree.exists():
        make_writable(tree)
        shutil.rmtree(tree)


def go_env(cache_dir: Path) -> dict[str, str]:
    """Go's environment for our builds: caches under cache_dir, no workspace, go.sum as it is,
    never a downloaded toolchain (FerretDB, the bench's seed peers)."""
    return {
        **os.environ,
        "GOWORK": "off",
        "GOFLAGS": "-mod=readonly -modcacherw",  # -modcacherw: `rm -rf .stack` works
        "GOPATH": str(cache_dir / "go"),
        "GOMODCACHE": str(cache_dir / "go" / "pkg" / "mod"),
        "GOCACHE": str(cache_dir / "go-build"),
        "GOTOOLCHAIN": "local",  # build with the Go that is installed, never download one
    }
