"""The files of a votes checkout that the tooling reads and writes.

The tooling never guesses where the checkout is: its functions take a `Repo` (or the paths
themselves), and only the command lines choose one, with `--repo` (default: the current directory).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path


class RepoNotFound(ValueError):
    """The directory given as the repository has no config.yaml."""


@dataclass(frozen=True)
class Repo:
    root: Path

    @classmethod
    def at(cls, root: Path | str) -> Repo:
        """The checkout at `root`; RepoNotFound, naming what is missing, when it is not one."""
        root = Path(root).resolve()
        if not (root / "config.yaml").is_file():
            raise RepoNotFound(
                f"no config.yaml in {root}: run from the votes checkout or pass --repo PATH"
            )
        return cls(root)

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def pyproject(self) -> Path:
        return self.root / "pyproject.toml"

    @property
    def kuberay(self) -> Path:
        return self.root / "kuberay"

    @property
    def rayservice(self) -> Path:
        return self.kuberay / "rayservice.yaml"

    @property
    def k8s(self) -> Path:
        """The kustomize layout `kubectl apply -k` takes."""
        return self.root / "deployments" / "k8s"


def add_repo_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repo",
        type=Path,
        default=Path("."),
        help="the votes checkout to read and write (default: the current directory)",
    )


def shown(path: Path) -> Path:
    """A path as messages show it: relative to the current directory when it is inside it."""
    cwd = Path.cwd()
    return path.relative_to(cwd) if path.is_relative_to(cwd) else path
