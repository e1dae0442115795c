"""deployments.manifests.cli: `python -m deployments.manifests --check` exits 0 when current and
names a missing config.yaml.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deployments.manifests.cli import main
from devkit.k8s_validation import REPO


def test_manifests_check_cli_exits_0_when_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deployments.manifests", "--check"],
        check=False,
        cwd=REPO.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_manifests_cli_names_the_missing_config_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--check", "--repo", str(tmp_path)]) == 2
    assert f"no config.yaml in {tmp_path.resolve()}" in capsys.readouterr().err
