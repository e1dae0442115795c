"""What the deploy CLI refuses (placeholder image, placeholder secrets) or hides (secret values)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any

from deployments import manifests
from deployments.deploy.objects import DeployError, of_kind

PLACEHOLDER = "change-me"

PLACEHOLDER_IMAGE = """the image {image} is a placeholder: nothing is published there.
  Build the image (Dockerfile at the repository root) and push it where the cluster can pull it:
      docker build -t REGISTRY/votes:TAG . && docker push REGISTRY/votes:TAG    (or podman)
  then name it, one of:
    - pass --image REGISTRY/votes:TAG to this command,
    - or add to deployments/k8s/kustomization.yaml (what `kubectl apply -k` uses too):
        images:
          - name: {repository}
            newName: REGISTRY/votes
            newTag: TAG
  README.md, "Deploy on Kubernetes", step 3."""


def images_of(docs: Iterable[dict[str, Any]]) -> list[str]:
    """Every container image of the objects (pod templates at any depth, initContainers too)."""
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    found.extend(
                        c["image"] for c in value if isinstance(c, dict) and c.get("image")
                    )
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(list(docs))
    return found


def refuse_placeholder_image(docs: Sequence[dict[str, Any]]) -> None:
    """The RayService must run an image someone built: not ghcr.io/votes-contest/votes."""
    for image in images_of(docs):
        if manifests.image_name(image) == manifests.IMAGE_REPOSITORY:
            raise DeployError(
                PLACEHOLDER_IMAGE.format(image=image, repository=manifests.IMAGE_REPOSITORY)
            )


def refuse_placeholders(docs: Sequence[dict[str, Any]]) -> None:
    bad = []
    for doc in of_kind(docs, "Secret"):
        for key, value in (doc.get("data") or {}).items():
            if PLACEHOLDER in base64.b64decode(value).decode(errors="replace").lower():
                bad.append(f"{doc['metadata']['name']}.{key}")
    if bad:
        raise DeployError(
            "secrets.env still has placeholder values (change-me) for: "
            + ", ".join(bad)
            + "\n  edit deployments/k8s/secrets.env (e.g. values from `openssl rand -hex 24`)"
        )


def redacted(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] != "Secret":
        return doc
    shown = dict(doc)
    shown["data"] = {key: "<redacted>" for key in doc.get("data") or {}}
    return shown
