"""The lab's images (deployments/lab_images), without building anything: the input hashing that
decides a rebuild, the build order, and that what an image copies in is what its hash covers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from deployments import manifests
from deployments.lab_images import base, cli
from deployments.lab_images.recipe import ImageSpec, index, input_hash, selected
from devkit.k8s_validation import REPO


def spec(name: str = "x", *, recipe: dict[str, Any] | None = None, **kw: Any) -> ImageSpec:
    return ImageSpec(name=name, ref=f"lab/{name}:1", base=None, recipe=recipe or {"a": 1}, **kw)


def test_input_hash_follows_content_recipe_and_base(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("x = 1\n")
    (tmp_path / "file.txt").write_text("one")
    image = spec(inputs=("pkg", "file.txt"))
    first = input_hash(image, tmp_path, "base1")
    assert input_hash(image, tmp_path, "base1") == first

    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    assert input_hash(image, tmp_path, "base1") == first, "caches are not inputs"

    (tmp_path / "pkg" / "mod.py").write_text("x = 2\n")
    changed = input_hash(image, tmp_path, "base1")
    assert changed != first
    (tmp_path / "pkg" / "new.py").write_text("")
    assert input_hash(image, tmp_path, "base1") != changed
    assert input_hash(image, tmp_path, "base2") != input_hash(image, tmp_path, "base1")
    other_recipe = spec(recipe={"a": 2}, inputs=("pkg", "file.txt"))
    assert input_hash(other_recipe, tmp_path, "base1") != input_hash(image, tmp_path, "base1")


def test_a_missing_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gone"):
        input_hash(spec(inputs=("gone",)), tmp_path, None)


def test_only_builds_the_bases_too() -> None:
    assert [s.name for s in selected(cli.SPECS, ["votes"])] == ["debian", "ray-base", "votes"]
    assert [s.name for s in selected(cli.SPECS, ["kafka"])] == ["debian", "kafka"]
    with pytest.raises(ValueError, match="nope"):
        selected(cli.SPECS, ["nope"])


def test_every_copied_file_is_hashed() -> None:
    for image in cli.SPECS:
        for source, _dest in image.recipe.get("copies") or []:
            assert source in image.inputs, f"{image.name}: {source} is copied but not hashed"


def test_the_votes_context_holds_what_the_dockerfile_copies() -> None:
    text = (REPO.root / "Dockerfile").read_text()
    sources = [
        word
        for line in re.findall(r"^COPY (.*)$", text, re.MULTILINE)
        for word in line.split()[:-1]
        if not word.startswith("--")
    ]
    assert sources
    for source in sources:
        assert any(Path(entry).match(source.rstrip("/")) for entry in base.VOTES_CONTEXT), source


def test_the_stand_in_is_the_pinned_ray() -> None:
    assert base.RAY_VERSION == manifests.ray_version(REPO.pyproject)
    assert base.RAY_BASE.ref.endswith(f":{base.RAY_VERSION}-py311")
    assert base.VOTES.recipe["build_args"] == {"RAY_BASE_IMAGE": base.RAY_BASE.ref}


def test_index_lists_the_deployable_images_by_archive() -> None:
    assert index(cli.SPECS) == {
        "votes-lab.local/votes:lab": "votes.tar",
        "votes-lab.local/redis:7-bookworm": "redis.tar",
        "votes-lab.local/ferretdb:1.24-sqlite": "ferretdb.tar",
        "votes-lab.local/kafka:4-kraft": "kafka.tar",
    }
    assert len({spec.ref for spec in cli.SPECS}) == len(cli.SPECS)
