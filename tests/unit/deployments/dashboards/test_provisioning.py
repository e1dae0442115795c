"""deployments.dashboards.provisioning: the data sources and the provider match the dashboards and
Grafana's mounts.
"""

from __future__ import annotations

import yaml

from deployments.dashboards.consistency import panels_of
from deployments.dashboards.provisioning import DASHBOARD_MOUNT, GRAFANA_DIR
from tests.unit.deployments.dashboards.committed import ROOT, committed


def test_provisioning_matches_the_dashboards_data_sources() -> None:
    sources = yaml.safe_load((ROOT / GRAFANA_DIR / "datasources.yaml").read_text())
    by_uid = {s["uid"]: s for s in sources["datasources"]}
    for name in ("contest.json", "pipeline.json"):
        for panel in panels_of(committed(name)):
            for target in panel.get("targets", []):
                source = by_uid[target["datasource"]["uid"]]
                assert source["type"] == target["datasource"]["type"]
    providers = yaml.safe_load((ROOT / GRAFANA_DIR / "dashboards.yaml").read_text())
    assert providers["providers"][0]["options"]["path"] == DASHBOARD_MOUNT
    grafana = (ROOT / GRAFANA_DIR / "grafana.yaml").read_text()
    assert f"mountPath: {DASHBOARD_MOUNT}" in grafana
    kustomization = yaml.safe_load((ROOT / "deployments/k8s/kustomization.yaml").read_text())
    generated = {g["name"]: g["files"] for g in kustomization["configMapGenerator"]}
    assert sorted(generated["votes-grafana-dashboards"]) == [
        "grafana/dashboards/contest.json",
        "grafana/dashboards/pipeline.json",
    ]
