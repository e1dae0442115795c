"""The autoscaling scenario runs a Ray cluster of its own, in a process of its own: it never
touches the session's `pipeline` Ray instance. Deselect it with `-m "not autoscaling"`."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "autoscaling: starts its own autoscaling Ray cluster (fake nodes) and takes minutes",
    )
