"""A small kustomize for our layout: the objects `kubectl apply -k deployments/k8s` would apply.

It implements exactly the features our layout uses and refuses every other one, so it never
silently disagrees with the real kustomize. The deploy CLI and the tests render with it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deployments.manifests.names import IMAGE_REPOSITORY
from deployments.repo import shown


class KustomizeError(ValueError):
    """The layout uses something this renderer does not implement, or a file is missing."""


@dataclass
class Rendered:
    docs: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)  # e.g. "used secrets.env.example"
    example_env_files: list[Path] = field(default_factory=list)


KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_SUPPORTED_KEYS = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "labels",
    "images",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
}
_GENERATOR_KEYS = {"name", "envs", "files", "literals", "type"}
# Kinds of our layout that are cluster-scoped; kustomize puts every other kind in the namespace.
CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "PersistentVolume",
    "PriorityClass",
    "StorageClass",
}
_ENV_KEY = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def find_kustomization(directory: Path) -> Path:
    for name in KUSTOMIZATION_NAMES:
        if (directory / name).is_file():
            return directory / name
    raise KustomizeError(f"{directory}: no kustomization.yaml")


def render_kustomization(
    directory: Path,
    *,
    namespace: str | None = None,
    images: Mapping[str, str] | None = None,
    example_env_fallback: bool = False,
) -> Rendered:
    """The objects `kustomize build directory` produces, optionally moved to `namespace` and with
    images overridden ({image name: new reference}, like `kustomize edit set image`).

    example_env_fallback: a missing env file FILE of a generator is read from FILE.example instead
    (placeholders; for dry runs and tests), and `notes` says so.
    """
    rendered = _render(Path(directory).resolve(), example_env_fallback)
    if namespace is not None:
        _set_namespace(rendered.docs, namespace)
    if images:
        for name, reference in images.items():
            _set_image(rendered.docs, name, reference)
    return rendered


def _render(directory: Path, example_env_fallback: bool) -> Rendered:
    path = find_kustomization(directory)
    spec = yaml.safe_load(path.read_text()) or {}
    unknown = set(spec) - _SUPPORTED_KEYS
    if unknown:
        raise KustomizeError(f"{path}: unsupported kustomization fields {sorted(unknown)}")
    if spec.get("kind", "Kustomization") != "Kustomization":
        raise KustomizeError(f"{path}: kind must be Kustomization")

    out = Rendered(docs=[])
    for entry in spec.get("resources") or []:
        _render_resource(path, directory, entry, example_env_fallback, out)

    generators = [("ConfigMap", g) for g in spec.get("configMapGenerator") or []]
    generators += [("Secret", g) for g in spec.get("secretGenerator") or []]
    if generators:
        _check_generator_options(path, spec.get("generatorOptions") or {})
    for kind, generator in generators:
        out.docs.append(_generate(path, directory, kind, generator, example_env_fallback, out))

    for entry in spec.get("labels") or []:
        _add_labels(path, entry, out.docs)
    for image in spec.get("images") or []:
        _replace_image(path, image, out.docs)
    if spec.get("namespace"):
        _set_namespace(out.docs, spec["namespace"])
    return out


def _render_resource(
    path: Path, directory: Path, entry: str, example_env_fallback: bool, out: Rendered
) -> None:
    """One `resources` entry of the kustomization at `path`, added to `out`."""
    if "://" in entry or entry.startswith(("github.com/", "git@")):
        raise KustomizeError(f"{path}: remote resource {entry!r} is not supported")
    target = (directory / entry).resolve()
    if target.is_dir():
        sub = _render(target, example_env_fallback)
        out.docs += sub.docs
        out.notes += sub.notes
        out.example_env_files += sub.example_env_files
    elif target.is_file():
        if not target.is_relative_to(directory):
            # kustomize's default load restrictor: files only from inside the root; a
            # directory outside is fine (it is loaded as a kustomization of its own).
            raise KustomizeError(
                f"{path}: {entry!r} is a file outside {directory}; kustomize refuses it "
                "(reference its directory, with a kustomization.yaml, instead)"
            )
        out.docs += [doc for doc in yaml.safe_load_all(target.read_text()) if doc]
    else:
        raise KustomizeError(f"{path}: resource {entry!r} not found")


def _check_generator_options(path: Path, options: Mapping[str, Any]) -> None:
    if set(options) != {"disableNameSuffixHash"} or options["disableNameSuffixHash"] is not True:
        # Name hashes would need kustomize's name-reference rewriting, which is not implemented.
        raise KustomizeError(
            f"{path}: generators need `generatorOptions: {{disableNameSuffixHash: true}}`"
        )


def _add_labels(path: Path, entry: Mapping[str, Any], docs: list[dict[str, Any]]) -> None:
    """One `labels` entry: its pairs on every object's metadata (not selectors or templates)."""
    extra = set(entry) - {"pairs", "includeSelectors", "includeTemplates"}
    if extra or entry.get("includeSelectors") or entry.get("includeTemplates"):
        raise KustomizeError(
            f"{path}: only `labels: [{{pairs: ...}}]` on metadata is supported, not {entry}"
        )
    for doc in docs:
        doc.setdefault("metadata", {}).setdefault("labels", {}).update(entry["pairs"])


def _replace_image(path: Path, image: Mapping[str, Any], docs: list[dict[str, Any]]) -> None:
    """One `images` entry."""
    extra = set(image) - {"name", "newName", "newTag", "digest"}
    if extra:
        raise KustomizeError(f"{path}: unsupported image fields {sorted(extra)}")
    reference = image.get("newName", image["name"])
    if image.get("digest"):
        reference += "@" + image["digest"]
    elif image.get("newTag"):
        reference += ":" + str(image["newTag"])
    _set_image(docs, image["name"], reference, keep_tag=not image.get("newTag"))


def _generate(
    path: Path,
    directory: Path,
    kind: str,
    generator: Mapping[str, Any],
    example_env_fallback: bool,
    out: Rendered,
) -> dict[str, Any]:
    unknown = set(generator) - _GENERATOR_KEYS
    if unknown or (kind == "ConfigMap" and "type" in generator):
        raise KustomizeError(f"{path}: unsupported {kind} generator fields {sorted(unknown)}")
    values: dict[str, str] = {}
    for env in generator.get("envs") or []:
        env_path = directory / env
        if not env_path.is_file():
            example = env_path.with_name(env_path.name + ".example")
            if example_env_fallback and example.is_file():
                out.notes.append(
                    f"{shown(env_path)} not found: used {example.name} (placeholder values)"
                )
                out.example_env_files.append(example)
                env_path = example
            else:
                hint = f"; create it from {example.name}" if example.is_file() else ""
                raise KustomizeError(f"{env_path}: not found (needed by {path.name}){hint}")
        values.update(parse_env_file(env_path))
    for literal in generator.get("literals") or []:
        key, sep, value = literal.partition("=")
        if not sep:
            raise KustomizeError(f"{path}: literal {literal!r} is not KEY=VALUE")
        values[key] = value
    for file_entry in generator.get("files") or []:
        key, sep, file_name = file_entry.partition("=")
        if not sep:
            key, file_name = Path(file_entry).name, file_entry
        file_path = directory / file_name
        if not file_path.is_file():
            raise KustomizeError(f"{path}: generator file {file_name!r} not found")
        values[key] = file_path.read_text()
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": generator["name"]},
    }
    if kind == "Secret":
        doc["type"] = generator.get("type", "Opaque")
        doc["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    else:
        doc["data"] = values
    return doc


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as kustomize reads them: `#` comments and blank lines skipped, the value
    taken literally (quotes are kept, so they are refused here), no KEY-only lines."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        where = f"{path}:{number}"
        if not sep:
            raise KustomizeError(f"{where}: expected KEY=VALUE")
        if not _ENV_KEY.match(key):
            raise KustomizeError(f"{where}: {key!r} is not a valid key")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            raise KustomizeError(f"{where}: remove the quotes (kustomize would keep them)")
        values[key] = value
    return values


def _set_namespace(docs: list[dict[str, Any]], namespace: str) -> None:
    for doc in docs:
        metadata = doc.setdefault("metadata", {})
        if doc.get("kind") == "Namespace":
            metadata["name"] = namespace  # kustomize renames Namespace objects too
        elif doc.get("kind") not in CLUSTER_SCOPED_KINDS:
            metadata["namespace"] = namespace


def image_name(reference: str) -> str:
    name = reference.split("@", 1)[0]
    head, sep, tail = name.rpartition(":")
    return head if sep and "/" not in tail else name


def _set_image(
    docs: list[dict[str, Any]], name: str, reference: str, keep_tag: bool = False
) -> None:
    """Like kustomize's image transformer: every containers[]/initContainers[] at any depth."""

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    for container in value:
                        current = container.get("image") if isinstance(container, dict) else None
                        if current and image_name(current) == name:
                            new = reference
                            if keep_tag and current != image_name(current):
                                new = reference + current[len(image_name(current)) :]
                            container["image"] = new
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(docs)


def image_override(reference: str) -> dict[str, str]:
    """`--image REF` of the deploy CLI: replaces our image wherever it is used."""
    return {IMAGE_REPOSITORY: reference}
