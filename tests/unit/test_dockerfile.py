"""The image (Dockerfile): the Ray pin of pyproject.toml, and the runtime only. The tooling's
dependencies (the `ops` extra) stay out of it, which holds because nothing under serve_app/ imports
the tooling or them.
"""

from __future__ import annotations

import ast
import re
import tomllib

from deployments.manifests.sources import ray_version
from devkit.k8s_validation import REPO

# Import roots only the tooling (deployments/, the `ops` extra) may use.
TOOLING_IMPORTS = {"deployments", "kubernetes", "grafana_foundation_sdk"}
OPS_PACKAGES = {"kubernetes", "grafana-foundation-sdk"}


def test_dockerfile_matches_the_ray_pin() -> None:
    """The base is an ARG (the lab passes a stand-in); its default is the pinned upstream image."""
    text = (REPO.root / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert base == "${RAY_BASE_IMAGE}"
    first_instruction = re.search(r"^[A-Z]+ .*$", text, re.MULTILINE)
    assert first_instruction is not None
    (default,) = re.findall(r"^ARG RAY_BASE_IMAGE=(\S+)$", text, re.MULTILINE)
    assert first_instruction.group(0) == f"ARG RAY_BASE_IMAGE={default}", (
        "the ARG must precede FROM"
    )
    assert default == f"rayproject/ray:{ray_version(REPO.pyproject)}-py311"
    for needed in ("pyproject.toml", "requirements.lock", "serve_app/", "proto/"):
        assert re.search(rf"^COPY .*{re.escape(needed)}", text, re.MULTILINE), needed
    assert not re.search(
        r"^(ENV|ARG) .*(PASSWORD|TOKEN|SECRET)", text, re.MULTILINE | re.IGNORECASE
    )


def package_name(requirement: str) -> str:
    """`grafana-foundation-sdk==1!10.1.0` -> `grafana-foundation-sdk`; `ray[serve]==X` -> `ray`."""
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_image_installs_no_ops_dependency() -> None:
    """The Dockerfile installs [project].dependencies only; the tooling's packages are the extra."""
    project = tomllib.loads(REPO.pyproject.read_text())["project"]
    runtime = {package_name(r) for r in project["dependencies"]}
    assert not runtime & OPS_PACKAGES, (
        f"runtime dependencies the image need not carry: {runtime & OPS_PACKAGES}"
    )
    assert OPS_PACKAGES <= {package_name(r) for r in project["optional-dependencies"]["ops"]}
    dockerfile = (REPO.root / "Dockerfile").read_text()
    assert "['project']['dependencies']" in dockerfile and "optional-dependencies" not in dockerfile


def imported_roots(tree: ast.Module) -> set[str]:
    """The top-level package of every absolute import in a module."""
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_runtime_module_imports_the_tooling() -> None:
    sources = sorted((REPO.root / "serve_app").rglob("*.py"))
    assert sources
    offenders = {
        str(path.relative_to(REPO.root)): sorted(found)
        for path in sources
        if (found := imported_roots(ast.parse(path.read_text(), str(path))) & TOOLING_IMPORTS)
    }
    assert not offenders, f"serve_app/ is what the image runs; it must not import {offenders}"
