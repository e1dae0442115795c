"""Offline validation of Kubernetes manifests, for any test that writes or generates them.

    from devkit.k8s_validation import validate_manifest, render_layout
    problems = validate_manifest(doc)          # [] when valid; else "Kind/name: path: message"

Also what the manifest tests share: the checkout they test (REPO), its kustomize layouts
rendered, and lookups in the rendered objects (layouts.py).

- Built-in kinds: `kubernetes_validate` (Kubernetes 1.33 schemas, strict: unknown fields fail).
  A built-in kind without a schema is a failure, never a skip.
- KubeRay, Strimzi and Gateway API custom resources: the upstream CRDs vendored in
  devkit/k8s_schemas (see its README), made strict the way that README says: `nullable` widened to
  null, fields that are required but defaulted by the API server dropped from `required`, and
  `additionalProperties: false` on every object with `properties` (except
  x-kubernetes-preserve-unknown-fields), so a typo such as `enableInTreeAutoScaling` fails instead
  of being dropped by the API server. The CR's `metadata` (just `type: object` in CRDs) is checked
  against ObjectMeta.
- What jsonschema cannot see and the operators or API server would refuse: object names, container
  port names, and the checks of KubeRay's own validation (`kuberay_operator_problems`).
- Serve configs (`serve_config_problems`): Ray's ServeDeploySchema, plus unknown keys, which
  that pydantic schema ignores.

The CRD folder missing is a failure with a message (`SchemasMissing`), never a skip.

One module per part: schemas.py (built-in kinds and CRDs), checks.py (beyond the schemas, and
`validate_manifest`), layouts.py, serve_configs.py; this package exports them all.
"""

from devkit.k8s_validation.checks import (
    containers_of,
    kuberay_operator_problems,
    name_problems,
    validate_manifest,
)
from devkit.k8s_validation.layouts import (
    LAYOUTS,
    PLACEHOLDER,
    REPO,
    head_container,
    load_yaml_docs,
    main_docs,
    one,
    render_layout,
    rendered,
    worker_containers,
)
from devkit.k8s_validation.schemas import (
    CRD_FILES,
    CUSTOM_GROUPS,
    KUBERNETES_VERSION,
    SCHEMAS_DIR,
    SchemasMissing,
    crd_deprecation,
    crd_validator,
    crd_versions,
    name_of,
    split_api_version,
    strict_structural_schema,
    validate_builtin,
    validate_custom,
)
from devkit.k8s_validation.serve_configs import serve_config_problems, unknown_keys

__all__ = [
    "CRD_FILES",
    "CUSTOM_GROUPS",
    "KUBERNETES_VERSION",
    "LAYOUTS",
    "PLACEHOLDER",
    "REPO",
    "SCHEMAS_DIR",
    "SchemasMissing",
    "containers_of",
    "crd_deprecation",
    "crd_validator",
    "crd_versions",
    "head_container",
    "kuberay_operator_problems",
    "load_yaml_docs",
    "main_docs",
    "name_of",
    "name_problems",
    "one",
    "render_layout",
    "rendered",
    "serve_config_problems",
    "split_api_version",
    "strict_structural_schema",
    "unknown_keys",
    "validate_builtin",
    "validate_custom",
    "validate_manifest",
    "worker_containers",
]
