"""The dashboards as committed under deployments/k8s/grafana/dashboards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deployments.dashboards.provisioning import DASHBOARD_DIR

ROOT = Path(__file__).resolve().parents[4]


def committed(name: str) -> dict[str, Any]:
    return json.loads((ROOT / DASHBOARD_DIR / name).read_text())
