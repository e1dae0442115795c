"""The lab's CoreDNS: only the plugins its Corefile uses, on the control plane's Kubernetes modules.

`go install github.com/coredns/coredns` compiles every plugin (the cloud providers' SDKs, etcd,
dnstap, ...) and its own client-go: about 1,400 packages, the longest build after the API server.
build.py instead writes a small module whose main links the four plugins node_config.corefile()
needs and pins every k8s.io and sigs.k8s.io module to the version the kube binaries were built
from, so Go's build cache already holds most of what is left (about 800 packages in all).
"""

from __future__ import annotations

COREDNS_MODULE = "github.com/coredns/coredns"
COREDNS_VERSION = "v1.15.0"
# In the order of CoreDNS's plugin.cfg (a server runs its plugins in that order, not the
# Corefile's); exactly the directives of node_config.corefile().
PLUGINS = ("bind", "errors", "cache", "kubernetes")


def shared_versions(go_list_m_all: str) -> dict[str, str]:
    """The Kubernetes modules' selected versions, from `go list -m all` in the kube module.

    A line is `path version` or, for a replaced module, `path version => path version`: the
    version after the arrow is the one compiled.
    """
    versions: dict[str, str] = {}
    for line in go_list_m_all.splitlines():
        fields = line.split()
        if len(fields) < 2 or not fields[0].startswith(("k8s.io/", "sigs.k8s.io/")):
            continue
        if fields[0] == "k8s.io/kubernetes":
            continue  # the main module's requirement, not a library CoreDNS links
        versions[fields[0]] = fields[-1]
    if not versions:
        raise ValueError("no k8s.io modules in the kube module's `go list -m all`")
    return versions


def go_mod(versions: dict[str, str]) -> str:
    replaces = "".join(
        f"\t{path} => {path} {version}\n" for path, version in sorted(versions.items())
    )
    return (
        "module k8slab.local/coredns\n\ngo 1.26\n\n"
        f"require {COREDNS_MODULE} {COREDNS_VERSION}\n\n"
        f"replace (\n{replaces})\n"
    )


def main_go() -> str:
    imports = "".join(f'\t_ "{COREDNS_MODULE}/plugin/{name}"\n' for name in PLUGINS)
    directives = ", ".join(f'"{name}"' for name in PLUGINS)
    return (
        "// CoreDNS with only the plugins the lab's Corefile uses (coredns_module.py).\n"
        "package main\n\n"
        "import (\n"
        f'\t"{COREDNS_MODULE}/core/dnsserver"\n'
        f'\t"{COREDNS_MODULE}/coremain"\n\n'
        f"{imports})\n\n"
        f"func init() {{ dnsserver.Directives = []string{{{directives}}} }}\n\n"
        "func main() { coremain.Run() }\n"
    )
