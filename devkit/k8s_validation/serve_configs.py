"""Serve configs as KubeRay and `serve deploy` submit them, checked strictly."""

from __future__ import annotations

import typing
from typing import Any


def _models_in(annotation: Any) -> list[type]:
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type] = []
    for argument in typing.get_args(annotation):
        found += _models_in(argument)
    return found


def unknown_keys(model: type, data: Any, path: str) -> list[str]:
    """Keys a pydantic model does not define, recursively (Ray's Serve schemas ignore them)."""
    if not isinstance(data, dict):
        return []
    fields = model.model_fields
    by_name = dict(fields) | {f.alias: f for f in fields.values() if f.alias}
    problems = []
    for key, value in data.items():
        if key not in by_name:
            problems.append(f"{path}.{key}: unknown field of {model.__name__}")
            continue
        models = _models_in(by_name[key].annotation)
        if not models:
            continue
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            where = f"{path}.{key}" + (f"[{index}]" if isinstance(value, list) else "")
            problems += unknown_keys(models[0], item, where)
    return problems


def serve_config_problems(serve_config: Any) -> list[str]:
    """Ray's own ServeDeploySchema (what `serve deploy` and KubeRay submit to), strictly."""
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    try:
        ServeDeploySchema.model_validate(serve_config)
    except ValidationError as exc:
        return [f"serve config: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    return unknown_keys(ServeDeploySchema, serve_config, "serve config")
