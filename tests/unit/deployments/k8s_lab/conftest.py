"""The lab's modules import each other by bare name (lab, lab_core, node_app, ...), as they do
when deployments/k8s-lab/*.py run: put that folder first on sys.path for these tests."""

from __future__ import annotations

import sys
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parents[4] / "deployments" / "k8s-lab"
sys.path.insert(0, str(LAB_DIR))
