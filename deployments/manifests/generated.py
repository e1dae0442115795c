"""The files `make manifests` writes, and how they differ from what is committed."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path

from deployments.manifests.rayservice import render_rayservice
from deployments.repo import Repo, shown


def generated_files(repo: Repo) -> dict[Path, str]:
    """Every file `make manifests` writes, with its content."""
    return {repo.rayservice: render_rayservice(repo)}


def check(files: Mapping[Path, str]) -> list[str]:
    """A message per stale or missing file, with the start of its diff."""
    problems = []
    for path, wanted in files.items():
        name = shown(path)
        current = path.read_text() if path.is_file() else None
        if current == wanted:
            continue
        if current is None:
            problems.append(f"{name}: missing")
            continue
        diff = list(
            difflib.unified_diff(
                current.splitlines(),
                wanted.splitlines(),
                f"{name} (committed)",
                f"{name} (from config.yaml)",
                lineterm="",
                n=1,
            )
        )
        changed = sum(1 for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---"))
        excerpt = "\n".join("    " + line for line in diff[:40])
        more = f"\n    ... ({len(diff) - 40} more diff lines)" if len(diff) > 40 else ""
        problems.append(f"{name}: out of date ({changed} changed lines)\n{excerpt}{more}")
    return problems
