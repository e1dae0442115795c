"""deployments.check_config: a Serve config Ray would choke on is refused with the problem named."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployments import check_config

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "config.yaml"


def shipped() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


def deployment(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(d for d in config["applications"][0]["deployments"] if d["name"] == name)


def test_the_shipped_config_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config.problems(shipped()) == []
    assert check_config.main([str(CONFIG)]) == 0
    assert "check_config" not in capsys.readouterr().err


def test_policy_kwargs_the_policy_refuses_are_named() -> None:
    config = shipped()
    kwargs = deployment(config, "VotePersister")["autoscaling_config"]["policy"]["policy_kwargs"]
    kwargs["low_water_lag"] = kwargs["target_lag_per_replica"] + 1
    [problem] = check_config.problems(config)
    assert problem.startswith(
        "votes/VotePersister: autoscaling policy serve_app.pool.lag_policy:LagPolicy"
    )
    assert "low_water_lag must be >= 0 and below target_lag_per_replica" in problem


def test_an_unknown_policy_setting_is_named() -> None:
    config = shipped()
    policy = deployment(config, "VotePersister")["autoscaling_config"]["policy"]
    policy["policy_kwargs"]["target_lag"] = 5
    [problem] = check_config.problems(config)
    assert "target_lag" in problem


def test_a_policy_that_does_not_exist_is_named() -> None:
    config = shipped()
    deployment(config, "VotePersister")["autoscaling_config"]["policy"]["policy_function"] = (
        "serve_app.pool.lag_policy:NoSuchPolicy"
    )
    [problem] = check_config.problems(config)
    assert "NoSuchPolicy" in problem


def test_schema_errors_name_the_field() -> None:
    config = shipped()
    deployment(config, "VotePersister")["max_ongoing_requests"] = 0
    problems = check_config.problems(config)
    assert problems and all("max_ongoing_requests" in p for p in problems), problems


@pytest.mark.parametrize("config", [None, [], {}, {"applications": []}])
def test_not_a_serve_config(config: Any) -> None:
    assert check_config.problems(config) == ["not a Serve config: no `applications` list"]


def test_the_command_exits_1_with_one_line_per_problem_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = shipped()
    bad = copy.deepcopy(config)
    deployment(bad, "VotePersister")["autoscaling_config"]["policy"]["policy_kwargs"][
        "partitions"
    ] = 0
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(bad))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    assert check_config.main([str(path)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"check_config: {path}: votes/VotePersister")
    assert "partitions must be an integer >= 1" in lines[0]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_an_unreadable_file_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_config.main([str(tmp_path / "missing.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_the_autoscaling_scenarios_own_policy_settings_pass() -> None:
    # devkit/autoscale/ overrides config.yaml's policy; it checks them too
    # before it deploys, since Serve would only hang on a refusal.
    from devkit.autoscale.spec import ScenarioSpec, app_config
    from devkit.names import RunNames

    assert (
        check_config.problems(app_config(RunNames("autoscale"), ScenarioSpec(), redis_db=3)) == []
    )
    refused = ScenarioSpec()
    refused.policy_overrides["low_water_lag"] = refused.policy_overrides["target_lag_per_replica"]
    [problem] = check_config.problems(app_config(RunNames("autoscale"), refused, redis_db=3))
    assert "low_water_lag must be >= 0 and below target_lag_per_replica" in problem
