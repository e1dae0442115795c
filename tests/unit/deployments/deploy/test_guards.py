"""deployments.deploy.guards: a real apply refuses secrets.env's placeholder values."""

from __future__ import annotations

import pytest

from deployments.deploy.guards import refuse_placeholders
from deployments.deploy.objects import DeployError
from devkit.k8s_validation import main_docs


def test_apply_refuses_placeholder_secrets() -> None:
    with pytest.raises(DeployError, match="placeholder values"):
        refuse_placeholders(main_docs())
