"""lab.py is `make k8s-lab`'s entry point and, as `lab`, what the node_* modules use.

Nothing here runs the lab: these tests read the modules of deployments/k8s-lab and check that
every `module.NAME` one of them uses from a sibling module (`lab.RUN`, `nc.NODE_NAME`, ...)
exists there, so that moving a function between the lab's modules cannot leave a dangling name
that only a root run of `make k8s-node` would find.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

LAB_DIR = Path(__file__).resolve().parents[4] / "deployments" / "k8s-lab"

MODULES = sorted(p.stem for p in LAB_DIR.glob("*.py"))


def sibling_attributes(path: Path) -> set[tuple[str, str]]:
    """(sibling module, NAME) for every `alias.NAME` in path where alias imports a sibling."""
    tree = ast.parse(path.read_text())
    aliases = {
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name in MODULES
    }
    return {
        (aliases[node.value.id], node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in aliases
    }


@pytest.mark.parametrize("module", MODULES)
def test_every_name_a_module_uses_from_a_sibling_exists(module: str) -> None:
    missing = [
        f"{sibling}.{name}"
        for sibling, name in sorted(sibling_attributes(LAB_DIR / f"{module}.py"))
        if not hasattr(importlib.import_module(sibling), name)
    ]
    assert missing == []


def test_the_node_modules_use_lab_and_lab_lists_what_they_use() -> None:
    used = {
        name
        for module in MODULES
        if module.startswith("node")
        for sibling, name in sibling_attributes(LAB_DIR / f"{module}.py")
        if sibling == "lab"
    }
    lab = importlib.import_module("lab")
    assert {"Lab", "LabError", "RUN", "lab_checkout", "pod_ready", "teardown"} <= used
    assert used <= set(lab.__all__)


def test_every_module_of_the_lab_imports() -> None:
    for module in MODULES:
        importlib.import_module(module)


def test_log_paths_outside_the_checkout_are_shown_whole() -> None:
    # K8S_LAB_DIR may put the lab's logs anywhere; the log line must not raise for them.
    import lab_core

    assert lab_core.shown(lab_core.REPO / ".k8s-lab" / "x.log") == Path(".k8s-lab/x.log")
    assert lab_core.shown(Path("/tmp/elsewhere/x.log")) == Path("/tmp/elsewhere/x.log")
