"""Check a Serve config (config.yaml) before Ray gets it: `make run` and `make manifests` call it.

    .venv/bin/python -m deployments.check_config config.yaml

Serve validates its schema when it deploys, but builds a deployment's autoscaling policy inside
its controller. There, bad `policy_kwargs` (say `low_water_lag` above `target_lag_per_replica`)
never reach the user: `serve run` waits while the controller fails every status call with
"'NoneType' object has no attribute 'deployment_config'". This builds each policy the way the
controller does (Ray 2.60: a class is instantiated once with its kwargs) and names the problem.
Exit 0 when the config is fine, 1 with one line per problem; it changes nothing.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def problems(config: Any) -> list[str]:
    """Every problem found in a parsed Serve config; empty when Serve can take it."""
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    if not isinstance(config, Mapping) or not config.get("applications"):
        return ["not a Serve config: no `applications` list"]
    try:
        schema = ServeDeploySchema.model_validate(config)
    except ValidationError as exc:
        return [
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        ]
    except Exception as exc:  # noqa: BLE001 - the schema imports policies: ImportError and kin
        return [f"{type(exc).__name__}: {exc}"]
    found: list[str] = []
    for app in schema.applications:
        for deployment in app.deployments:
            found += policy_problems(
                f"{app.name}/{deployment.name}", deployment.model_dump(exclude_unset=True)
            )
    return found


def policy_problems(where: str, deployment: Mapping[str, Any]) -> list[str]:
    """Build the deployment's custom autoscaling policy, if it has one, as Serve's controller
    does."""
    from ray.serve.config import AutoscalingPolicy

    autoscaling = deployment.get("autoscaling_config") or {}
    policy = autoscaling.get("policy") if isinstance(autoscaling, Mapping) else None
    if not policy:
        return []
    try:
        spec = AutoscalingPolicy(**policy)
        built = spec.get_policy()
        if inspect.isclass(built):
            built(**spec.policy_kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure here is what the controller would hit
        name = policy.get("policy_function", "?") if isinstance(policy, Mapping) else "?"
        return [f"{where}: autoscaling policy {name}: {type(exc).__name__}: {exc}"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="a Serve config file, e.g. config.yaml")
    args = parser.parse_args(argv)
    try:
        config = yaml.safe_load(args.config.read_text())
    except (OSError, yaml.YAMLError) as exc:
        print(f"check_config: cannot read {args.config}: {exc}", file=sys.stderr)
        return 1
    found = problems(config)
    for problem in found:
        print(f"check_config: {args.config}: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
