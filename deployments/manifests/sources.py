"""What the manifests are generated from: config.yaml (the Serve config) and pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from deployments.manifests.names import IMAGE_REPOSITORY


def load_config(path: Path) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text())
    if not isinstance(config, dict) or not config.get("applications"):
        raise ValueError(f"{path}: not a Serve config with `applications`")
    return config


def project_version(path: Path) -> str:
    return tomllib.loads(path.read_text())["project"]["version"]


def ray_version(path: Path) -> str:
    """The Ray pin of pyproject.toml (`ray[serve]==X`): the image and rayVersion must match it."""
    for dependency in tomllib.loads(path.read_text())["project"]["dependencies"]:
        found = re.fullmatch(r"ray(\[[^\]]*\])?==([0-9][0-9A-Za-z.]*)", dependency.replace(" ", ""))
        if found:
            return found.group(2)
    raise ValueError(f"{path}: no `ray==X` pin in [project].dependencies")


def default_image(pyproject: Path) -> str:
    return f"{IMAGE_REPOSITORY}:{project_version(pyproject)}"


def serve_ports(config: Mapping[str, Any]) -> tuple[int, int]:
    """(HTTP, gRPC) ports of the Serve proxies; Serve's defaults when config.yaml does not say."""
    http_port = int((config.get("http_options") or {}).get("port", 8000))
    grpc_port = int((config.get("grpc_options") or {}).get("port", 9000))
    return http_port, grpc_port
