"""The checkout the manifest tests read, its kustomize layouts rendered, and lookups in them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from deployments import manifests
from deployments.repo import Repo

# The checkout the tests run in; the tooling is told where it is, as its command lines are.
REPO = Repo.at(Path(__file__).resolve().parents[2])
LAYOUTS = {
    "deployments/k8s": REPO.k8s,
    "deployments/k8s/optional": REPO.k8s / "optional",
    "kuberay": REPO.kuberay,
}
# The value secrets.env.example gives every secret.
PLACEHOLDER = "change-me"


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render_layout(directory: Path, **kwargs: Any) -> manifests.Rendered:
    """`kustomize build directory`, with example env files standing in for missing secrets."""
    kwargs.setdefault("example_env_fallback", True)
    return manifests.render_kustomization(directory, **kwargs)


def rendered(layout: str) -> list[dict[str, Any]]:
    """The objects of one of LAYOUTS."""
    return render_layout(LAYOUTS[layout]).docs


def main_docs() -> list[dict[str, Any]]:
    """What `kubectl apply -k deployments/k8s` applies."""
    return rendered("deployments/k8s")


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def head_container(rayservice: dict[str, Any]) -> dict[str, Any]:
    return rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"][
        "containers"
    ][0]


def worker_containers(rayservice: dict[str, Any]) -> list[dict[str, Any]]:
    groups = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    return [group["template"]["spec"]["containers"][0] for group in groups]
