"""deployments.dashboards.cli: the committed files are the generator's output, and --check names
what is stale or missing.
"""

from __future__ import annotations

from typing import Any

import pytest

from deployments.dashboards.cli import main, stale_files
from deployments.dashboards.provisioning import DASHBOARD_DIR, render
from tests.unit.deployments.dashboards.committed import ROOT


def test_committed_files_are_the_generators_output() -> None:
    stale = stale_files(ROOT)
    assert not stale, f"stale generated files {[str(p) for p in stale]}: run `make dashboards`"


def test_check_mode_exits_zero_when_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", "--repo", str(ROOT)]) == 0


def test_cli_names_the_missing_config_yaml(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--check", "--repo", str(tmp_path)]) == 2
    assert "no config.yaml in" in capsys.readouterr().err


def test_check_mode_names_a_stale_file(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    for path, content in render().items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(content)
    assert stale_files(tmp_path) == []
    (tmp_path / DASHBOARD_DIR / "pipeline.json").write_text("{}\n")
    assert stale_files(tmp_path) == [DASHBOARD_DIR / "pipeline.json"]
