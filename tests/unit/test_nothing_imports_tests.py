"""Nothing outside tests/ imports `tests`: what bench, loadtest, scripts and the Makefile share
with the tests lives in devkit/, so tests/ can be cut and renamed freely."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Not ours, or the tests themselves.
SKIPPED_DIRS = {"tests", ".venv", ".stack", ".k8s-lab", ".git", "node_modules", "__pycache__"}
# Files that run Python modules by name (`python -m tests.x` would import tests too).
COMMAND_FILES = ("Makefile", ".ci/run", "scripts/fresh-clone-test.sh")
RUNS_TESTS_MODULE = re.compile(r"-m\s+tests\.")


def python_files(root: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        found += [Path(folder) / name for name in sorted(files) if name.endswith(".py")]
    return found


def imports_of_tests(path: Path) -> list[str]:
    """`file:line: statement` for every import of `tests` or a module under it in one file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        if any(module == "tests" or module.startswith("tests.") for module in modules):
            found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_outside_tests_imports_tests() -> None:
    files = python_files(ROOT)
    assert any(path.parts[-2:] == ("bench", "run.py") for path in files), "bench/ not scanned"
    offenders = [line for path in files for line in imports_of_tests(path)]
    assert offenders == [], "import these from devkit/ instead:\n" + "\n".join(offenders)


def test_no_command_runs_a_tests_module() -> None:
    offenders = [
        f"{name}: {line.strip()}"
        for name in COMMAND_FILES
        if (ROOT / name).is_file()
        for line in (ROOT / name).read_text().splitlines()
        if RUNS_TESTS_MODULE.search(line)
    ]
    assert offenders == [], "run these from devkit/ instead:\n" + "\n".join(offenders)


def test_the_check_finds_every_form_of_import(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "helper.py").write_text("import tests.support\n")  # inside: allowed
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "run.py").write_text(
        "import os\n"
        "import tests\n"
        "import tests.support.kafka as kafka\n"
        "from tests.support.names import RunNames\n"
        "from tests import k8s_validation\n"
        "from testsuite import x\n"
        "from . import tests\n"
        "def later():\n"
        "    from tests.browser import launch\n"
    )
    offenders = [line for path in python_files(tmp_path) for line in imports_of_tests(path)]
    assert [line.split(": ", 1)[0].rsplit(":", 1)[1] for line in offenders] == [
        "2",
        "3",
        "4",
        "5",
        "9",
    ]
    assert all("bench/run.py" in line for line in offenders)
