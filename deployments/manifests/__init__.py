"""Kubernetes manifests: the KubeRay RayService generated from config.yaml, our kustomize layout.

    .venv/bin/python -m deployments.manifests           # make manifests: (re)write the RayService
    .venv/bin/python -m deployments.manifests --check   # exit 1, with a diff, if that file is stale
    .venv/bin/python -m deployments.manifests --repo PATH   # another checkout (default: cwd)

config.yaml stays the single source of truth: the RayService's `spec.serveConfigV2` is config.yaml
itself (every key, `applications` verbatim) with exactly two kinds of change, both made here and
nowhere else: `http_options.host` opened to 0.0.0.0 so the Serve proxy is reachable from the pod
network, and the high-availability overrides of KUBERNETES_OVERRIDES (2 ingress replicas at least,
at most one per Ray node), which `make run` (one machine) must not have. The application args keep
their local values (127.0.0.1); on Kubernetes the pods override them with VOTES_* environment
variables from the ConfigMap `votes-config`, the Secret `votes-secrets` and the Strimzi KafkaUser
Secret `votes-app` (see serve_app/settings.py).

The modules, each one responsibility:

    names.py       names and in-cluster addresses shared with the hand-written deployments/k8s
    sources.py     reading config.yaml and pyproject.toml (versions, Serve ports)
    overrides.py   KUBERNETES_OVERRIDES: config.yaml as the cluster runs it
    shutdown.py    the drain budget and grace period of the Ray pods
    pods.py        the Ray head and worker pod templates (containers, env, sizes)
    rayservice.py  the RayService object and kuberay/rayservice.yaml's text
    generated.py   every file `make manifests` writes, and the staleness check
    kustomize.py   render_kustomization(): a small kustomize, for the deploy CLI and the tests
    yaml_text.py   the YAML style of the generated files
    cli.py         the command line

The names below are the package's public face, for callers outside it (the deploy CLI, the lab's
overlay generator); code inside the package imports from the module that defines a name.
"""

from deployments.manifests.cli import main
from deployments.manifests.generated import check, generated_files
from deployments.manifests.kustomize import (
    KustomizeError,
    Rendered,
    image_name,
    image_override,
    parse_env_file,
    render_kustomization,
)
from deployments.manifests.names import IMAGE_REPOSITORY
from deployments.manifests.pods import (
    RAY_GID,
    RAY_UID,
    restricted_container,
    restricted_pod,
    shm_size,
)
from deployments.manifests.sources import load_config, ray_version
from deployments.manifests.yaml_text import dump_all_yaml, dump_yaml

__all__ = [
    "IMAGE_REPOSITORY",
    "RAY_GID",
    "RAY_UID",
    "KustomizeError",
    "Rendered",
    "check",
    "dump_all_yaml",
    "dump_yaml",
    "generated_files",
    "image_name",
    "image_override",
    "load_config",
    "main",
    "parse_env_file",
    "ray_version",
    "render_kustomization",
    "restricted_container",
    "restricted_pod",
    "shm_size",
]
