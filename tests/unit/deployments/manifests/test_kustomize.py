"""deployments.manifests.kustomize: the small kustomize renders namespaces, generators and images
as kustomize does, and refuses what it does not implement.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from deployments.manifests.kustomize import KustomizeError, render_kustomization
from devkit import k8s_validation as kv
from devkit.k8s_validation import REPO, one


def test_renderer_moves_everything_to_another_namespace() -> None:
    docs = kv.render_layout(REPO.k8s, namespace="staging").docs
    assert one(docs, "Namespace")["metadata"]["name"] == "staging"
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"staging"}
    binding = one(docs, "RoleBinding")
    assert "namespace" not in binding["subjects"][0], (
        "a namespace here would not follow --namespace"
    )


def _layout(tmp_path: Path, kustomization: str, files: dict[str, str]) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "kustomization.yaml").write_text(kustomization)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_renderer_generators_and_images(tmp_path: Path) -> None:
    directory = _layout(
        tmp_path,
        "namespace: n\nresources: [pod.yaml]\ngeneratorOptions: {disableNameSuffixHash: true}\n"
        "secretGenerator: [{name: s, envs: [a.env], literals: [X=1]}]\n"
        "configMapGenerator: [{name: c, files: [conf.txt, renamed=conf.txt]}]\n"
        "images: [{name: busybox, newName: registry/busybox}]\n",
        {
            "pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
            "  containers: [{name: a, image: 'busybox:1.36'}, {name: b, image: other}]\n",
            "a.env.example": "# comment\n\nA=example=value\n",
            "conf.txt": "hello\n",
        },
    )
    with pytest.raises(KustomizeError, match=r"a.env: not found.*create it from a.env.example"):
        render_kustomization(directory)
    result = render_kustomization(directory, example_env_fallback=True)
    assert result.notes and "a.env.example" in result.notes[0]
    secret, config_map = one(result.docs, "Secret"), one(result.docs, "ConfigMap")
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "A": "example=value",
        "X": "1",
    }
    assert config_map["data"] == {"conf.txt": "hello\n", "renamed": "hello\n"}
    pod = one(result.docs, "Pod")
    assert [c["image"] for c in pod["spec"]["containers"]] == ["registry/busybox:1.36", "other"]
    assert {d["metadata"]["namespace"] for d in result.docs} == {"n"}


@pytest.mark.parametrize(
    ("kustomization", "files", "message"),
    [
        ("patches: [{path: p.yaml}]\n", {}, "unsupported kustomization fields"),
        ("resources: [../outside.yaml]\n", {}, "outside"),
        ("resources: [https://example.com/x.yaml]\n", {}, "remote resource"),
        ("configMapGenerator: [{name: c, literals: [A=1]}]\n", {}, "disableNameSuffixHash"),
        ("labels: [{pairs: {a: b}, includeSelectors: true}]\n", {}, "only `labels"),
        (
            (
                "generatorOptions: {disableNameSuffixHash: true}\n"
                "secretGenerator: [{name: s, envs: [q.env]}]\n"
            ),
            {"q.env": 'A="quoted"\n'},
            "remove the quotes",
        ),
    ],
    ids=["patches", "file-outside-root", "remote", "name-hash", "selector-labels", "quoted-env"],
)
def test_renderer_refuses_what_it_does_not_implement(
    tmp_path: Path, kustomization: str, files: dict[str, str], message: str
) -> None:
    (tmp_path / "outside.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: o}\n")
    directory = _layout(tmp_path / "root", kustomization, files)
    with pytest.raises(KustomizeError, match=message):
        render_kustomization(directory)
