"""The lab's small CoreDNS build (deployments/k8s-lab/coredns_module.py): pure text, no Go."""

from __future__ import annotations

import re
from pathlib import Path

import coredns_module as cm
import node_config as nc
import pytest

GO_LIST = """k8slab.local/tools
github.com/google/uuid v1.6.0
k8s.io/api v0.0.0 => k8s.io/api v0.36.3
k8s.io/klog/v2 v2.130.1
k8s.io/kubernetes v1.36.3
sigs.k8s.io/yaml v1.6.0
"""


def corefile_directives() -> set[str]:
    """The first word of each line directly inside the server block."""
    text = nc.corefile(Path("/lab/kubeconfig"))
    return set(re.findall(r"^    ([a-z_0-9]+)", text, flags=re.MULTILINE))


def test_the_build_links_exactly_the_plugins_the_corefile_uses() -> None:
    # A Corefile directive without its plugin fails CoreDNS's start ("Unknown directive").
    assert set(cm.PLUGINS) == corefile_directives()


def test_kubernetes_modules_take_the_version_compiled_for_the_kube_binaries() -> None:
    versions = cm.shared_versions(GO_LIST)
    assert versions == {
        "k8s.io/api": "v0.36.3",  # after the arrow: the replacement is what compiles
        "k8s.io/klog/v2": "v2.130.1",
        "sigs.k8s.io/yaml": "v1.6.0",
    }


def test_no_kubernetes_modules_is_an_error_not_an_unpinned_build() -> None:
    with pytest.raises(ValueError, match="no k8s.io modules"):
        cm.shared_versions("k8slab.local/tools\ngithub.com/google/uuid v1.6.0\n")


def test_go_mod_requires_coredns_and_pins_each_kubernetes_module() -> None:
    text = cm.go_mod({"k8s.io/api": "v0.36.3", "sigs.k8s.io/yaml": "v1.6.0"})
    assert f"require {cm.COREDNS_MODULE} {cm.COREDNS_VERSION}\n" in text
    assert "\tk8s.io/api => k8s.io/api v0.36.3\n" in text
    assert "\tsigs.k8s.io/yaml => sigs.k8s.io/yaml v1.6.0\n" in text


def test_main_imports_each_plugin_and_sets_the_directives_in_plugin_cfg_order() -> None:
    text = cm.main_go()
    for name in cm.PLUGINS:
        assert f'_ "{cm.COREDNS_MODULE}/plugin/{name}"' in text
    assert 'dnsserver.Directives = []string{"bind", "errors", "cache", "kubernetes"}' in text
    assert "coremain.Run()" in text
