"""What the lab's images are made of, as data, and the hash of it that decides a rebuild.

Pure: no subprocess, no buildah. An image is rebuilt exactly when its input hash changes: the
hash covers its recipe (packages, commands, config), the content of every input file and the
hash of the image it builds on, so a new Debian package list rebuilds everything above it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Files that are not inputs even inside an input directory: Python's caches.
IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
IGNORED_SUFFIXES = {".pyc", ".pyo"}


@dataclass(frozen=True)
class ImageSpec:
    """One image the lab builds.

    name: the archive's name (<name>.tar) and how --only selects it.
    ref: the image reference the overlay names and the archive carries.
    base: the name of the image this one builds on; None for the Debian root file system.
    recipe: everything the builder does, as JSON-able data (hashed as is).
    inputs: files and directories, relative to the repository, whose content goes in.
    deployable: listed in index.json (the node imports these); bases are not.
    """

    name: str
    ref: str
    base: str | None
    recipe: Mapping[str, Any]
    inputs: Sequence[str] = field(default_factory=tuple)
    deployable: bool = True


def input_files(root: Path, inputs: Iterable[str]) -> list[Path]:
    """Every file the inputs name, directories walked, caches skipped, in a stable order.

    A missing input is an error: a build that silently drops a file would hash the same as
    one that has it.
    """
    files: set[Path] = set()
    for entry in inputs:
        path = root / entry
        if path.is_file():
            files.add(path)
        elif path.is_dir():
            files.update(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not (IGNORED_PARTS & set(p.relative_to(root).parts))
                and p.suffix not in IGNORED_SUFFIXES
            )
        else:
            raise FileNotFoundError(f"image input {entry!r} not found under {root}")
    return sorted(files)


def input_hash(spec: ImageSpec, root: Path, base_hash: str | None) -> str:
    """sha256 of the recipe, the base's hash and each input file's path and content."""
    digest = hashlib.sha256()
    digest.update(json.dumps(dict(spec.recipe), sort_keys=True).encode())
    digest.update(f"\0ref={spec.ref}\0base={base_hash or '-'}\0".encode())
    for path in input_files(root, spec.inputs):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def in_build_order(specs: Sequence[ImageSpec]) -> list[ImageSpec]:
    """Bases before the images on them; refuses an unknown base or a cycle."""
    by_name = {spec.name: spec for spec in specs}
    ordered: list[ImageSpec] = []
    visiting: set[str] = set()

    def visit(spec: ImageSpec) -> None:
        if spec in ordered:
            return
        if spec.name in visiting:
            raise ValueError(f"image {spec.name}: its bases form a cycle")
        visiting.add(spec.name)
        if spec.base is not None:
            if spec.base not in by_name:
                raise ValueError(f"image {spec.name}: unknown base {spec.base!r}")
            visit(by_name[spec.base])
        ordered.append(spec)

    for spec in specs:
        visit(spec)
    return ordered


def selected(specs: Sequence[ImageSpec], only: Sequence[str] | None) -> list[ImageSpec]:
    """The images --only names plus the bases they need, in build order."""
    ordered = in_build_order(specs)
    if not only:
        return ordered
    by_name = {spec.name: spec for spec in ordered}
    unknown = sorted(set(only) - set(by_name))
    if unknown:
        raise ValueError(f"unknown image(s) {unknown}; known: {sorted(by_name)}")
    needed: set[str] = set()
    for name in only:
        current: str | None = name
        while current is not None:
            needed.add(current)
            current = by_name[current].base
    return [spec for spec in ordered if spec.name in needed]


def index(specs: Iterable[ImageSpec]) -> dict[str, str]:
    """index.json's content: {image reference: archive file name} of the deployable images."""
    return {spec.ref: f"{spec.name}.tar" for spec in specs if spec.deployable}
