#!/usr/bin/env python3
"""Build the lab's binaries once into .k8s-lab/bin (cached; a second run takes seconds).

Everything comes from the Go module proxy: kube-apiserver, kube-controller-manager,
kube-scheduler, kubectl and etcd from one generated local module that requires
k8s.io/kubernetes v1.36.3; kwok v0.8.0 and the KubeRay operator v1.6.2 with `go install`.
All of Go's caches live inside .k8s-lab/ (nothing in the home folder); the compiler runs
under `nice -n 19` with `-p=2` because a test run may share the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import coredns_module

REPO = Path(__file__).resolve().parents[2]
LAB = Path(os.environ.get("K8S_LAB_DIR", REPO / ".k8s-lab")).resolve()
BIN = LAB / "bin"
MODULE_DIR = LAB / "kube-module"
LOGS = LAB / "logs"

KUBERNETES_VERSION = "v1.36.3"
STAGING_VERSION = "v0.36.3"  # the staging modules' tag for kubernetes v1.36.3
GO_MOD_HEAD = (
    f"module k8slab.local/tools\n\ngo 1.26\n\nrequire k8s.io/kubernetes {KUBERNETES_VERSION}\n"
)
KWOK = "sigs.k8s.io/kwok/cmd/kwok@v0.8.0"
# KubeRay v1.7.0 is not served by the Go module proxy (403 for v1.7.0, its rc and its commit);
# v1.6.2 is the newest served and runs against our vendored v1.7.0 CRDs.
KUBERAY_MODULE = "github.com/ray-project/kuberay/ray-operator"
KUBERAY_VERSION = "v1.6.2"
# Not served at v0.36.3 and not needed by any command we build.
SKIP_STAGING = {"k8s.io/sample-cli-plugin"}


@dataclass(frozen=True)
class KubeBinary:
    name: str
    package: str


# In order of need: the lab cannot start anything without etcd and the API server.
KUBE_BINARIES: tuple[KubeBinary, ...] = (
    KubeBinary("etcd", "go.etcd.io/etcd/server/v3"),
    KubeBinary("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
    KubeBinary("kubectl", "k8s.io/kubernetes/cmd/kubectl"),
    KubeBinary("kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager"),
    KubeBinary("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler"),
    # The real node (node.py): kubelet and kube-proxy from the same module graph.
    KubeBinary("kubelet", "k8s.io/kubernetes/cmd/kubelet"),
    KubeBinary("kube-proxy", "k8s.io/kubernetes/cmd/kube-proxy"),
)


@dataclass(frozen=True)
class GoInstall:
    """A binary `go install`ed at a version from the Go module proxy (its go.mod has no replace)."""

    name: str
    target: str  # package@version
    built_as: str  # the file name go install writes into GOBIN
    ldflags: str = "-s -w"


CONTAINERD = "github.com/containerd/containerd/v2"
CONTAINERD_VERSION = "v2.4.2"  # Kubernetes 1.36 needs containerd 2.x; Debian 12 has 1.6 only
_CONTAINERD_LDFLAGS = f"-s -w -X {CONTAINERD}/version.Version={CONTAINERD_VERSION}"

GO_INSTALLS: tuple[GoInstall, ...] = (
    GoInstall("kwok", KWOK, "kwok"),
    GoInstall("kuberay-operator", f"{KUBERAY_MODULE}@{KUBERAY_VERSION}", "ray-operator"),
    # The real node's runtime (its cluster DNS: build_coredns).
    GoInstall(
        "containerd",
        f"{CONTAINERD}/cmd/containerd@{CONTAINERD_VERSION}",
        "containerd",
        _CONTAINERD_LDFLAGS,
    ),
    GoInstall(
        "containerd-shim-runc-v2",
        f"{CONTAINERD}/cmd/containerd-shim-runc-v2@{CONTAINERD_VERSION}",
        "containerd-shim-runc-v2",
        _CONTAINERD_LDFLAGS,
    ),
    GoInstall("ctr", f"{CONTAINERD}/cmd/ctr@{CONTAINERD_VERSION}", "ctr", _CONTAINERD_LDFLAGS),
)


ALL_NAMES = (*(b.name for b in KUBE_BINARIES), "coredns", *(t.name for t in GO_INSTALLS), "pause")
LAB_ONLY = ("kwok",)  # the fake kubelet of `make k8s-lab`; the real node needs none


def log(message: str) -> None:
    print(f"[k8s-lab build {time.strftime('%H:%M:%S')}] {message}", flush=True)


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GOPATH=str(LAB / "gopath"),
        GOMODCACHE=str(LAB / "gopath" / "pkg" / "mod"),
        GOCACHE=str(LAB / "gocache"),
        GOENV="off",  # ignore ~/.config/go/env
        GOTOOLCHAIN="local",
        GOFLAGS="-modcacherw -p=2",
        GOBIN=str(BIN),
        CGO_ENABLED="0",
        GOTELEMETRY="off",
    )
    return env


def run(args: list[str], *, cwd: Path, log_name: str, capture: bool = False) -> str:
    """Run a go command niced, its output into logs/<log_name>.log; raise with the log tail."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{log_name}.log"
    cmd = ["nice", "-n", "19", *args]
    with log_path.open("a") as log_file:
        log_file.write(f"$ {' '.join(cmd)}\n")
        log_file.flush()
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=go_env(),
            stdout=subprocess.PIPE if capture else log_file,
            stderr=log_file,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-30:])
        raise SystemExit(
            f"k8s-lab build: `{' '.join(args)}` failed (exit {proc.returncode}); "
            f"last lines of {log_path}:\n{tail}"
        )
    return proc.stdout or ""


def staging_modules() -> list[str]:
    """The staging modules kubernetes' own go.mod replaces with local paths."""
    out = run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
        cwd=MODULE_DIR,
        log_name="kube-module",
        capture=True,
    )
    gomod = Path(json.loads(out)["GoMod"]).read_text()
    found = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", gomod, flags=re.MULTILINE)
    modules = sorted(set(found) - SKIP_STAGING)
    if not modules:
        raise SystemExit("k8s-lab build: found no staging replaces in kubernetes' go.mod")
    return modules


def write_module() -> None:
    """The small local module: requires kubernetes, re-points its staging modules, keeps etcd."""
    stamp = MODULE_DIR / ".tidy-done"
    # The stamp names the version and the packages: adding a binary tidies the module again.
    wanted_stamp = " ".join([KUBERNETES_VERSION, *(b.package for b in KUBE_BINARIES)]) + "\n"
    if stamp.exists() and stamp.read_text() == wanted_stamp:
        return
    MODULE_DIR.mkdir(parents=True, exist_ok=True)
    (MODULE_DIR / "go.mod").write_text(GO_MOD_HEAD)
    log(f"reading k8s.io/kubernetes {KUBERNETES_VERSION}'s go.mod (downloads the module once)")
    modules = staging_modules()
    replaces = "".join(f"\t{m} => {m} {STAGING_VERSION}\n" for m in modules)
    (MODULE_DIR / "go.mod").write_text(f"{GO_MOD_HEAD}\nreplace (\n{replaces})\n")
    imports = "".join(f'\t_ "{b.package}"\n' for b in KUBE_BINARIES)
    (MODULE_DIR / "tools.go").write_text(
        "//go:build tools\n\n"
        "// Keeps the commands (and etcd) in the module graph for go mod tidy.\n"
        f"package tools\n\nimport (\n{imports})\n"
    )
    log(f"go mod tidy ({len(modules)} staging replaces; downloads the dependencies, ~1 min warm)")
    start = time.monotonic()
    run(["go", "mod", "tidy"], cwd=MODULE_DIR, log_name="kube-module")
    log(f"go mod tidy done in {time.monotonic() - start:.0f}s")
    stamp.write_text(wanted_stamp)


def ldflags() -> str:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    pairs = {
        "gitVersion": KUBERNETES_VERSION,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
    }
    xs = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        xs += [f"-X {pkg}.{key}={value}" for key, value in pairs.items()]
    return "-s -w " + " ".join(xs)


def build_kube(binary: KubeBinary) -> None:
    out = BIN / binary.name
    if out.exists():
        log(f"{binary.name}: cached")
        return
    log(f"{binary.name}: building {binary.package}")
    start = time.monotonic()
    tmp = out.with_suffix(".tmp")
    run(
        ["go", "build", "-trimpath", f"-ldflags={ldflags()}", "-o", str(tmp), binary.package],
        cwd=MODULE_DIR,
        log_name=binary.name,
    )
    tmp.rename(out)
    log(f"{binary.name}: built in {time.monotonic() - start:.0f}s")


def build_coredns() -> None:
    out = BIN / "coredns"
    if out.exists():
        log("coredns: cached")
        return
    plugins = ", ".join(coredns_module.PLUGINS)
    log(f"coredns: building {coredns_module.COREDNS_VERSION} with only {plugins}")
    start = time.monotonic()
    kube_modules = run(
        ["go", "list", "-m", "all"], cwd=MODULE_DIR, log_name="coredns", capture=True
    )
    source = LAB / "coredns-module"
    source.mkdir(parents=True, exist_ok=True)
    (source / "go.mod").write_text(
        coredns_module.go_mod(coredns_module.shared_versions(kube_modules))
    )
    (source / "main.go").write_text(coredns_module.main_go())
    run(["go", "mod", "tidy"], cwd=source, log_name="coredns")
    tmp = out.with_suffix(".tmp")
    run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(tmp), "."], cwd=source,
        log_name="coredns")  # fmt: skip
    tmp.rename(out)
    log(f"coredns: built in {time.monotonic() - start:.0f}s")


def go_install(tool: GoInstall) -> None:
    out = BIN / tool.name
    if out.exists():
        log(f"{tool.name}: cached")
        return
    log(f"{tool.name}: go install {tool.target}")
    start = time.monotonic()
    run(
        ["go", "install", "-trimpath", f"-ldflags={tool.ldflags}", tool.target],
        cwd=LAB,
        log_name=tool.name,
    )
    built = BIN / tool.built_as
    if built != out:
        built.rename(out)
    log(f"{tool.name}: built in {time.monotonic() - start:.0f}s")


# containerd's sandbox ("pause") container: waits for SIGINT/SIGTERM, reaps children meanwhile.
PAUSE_SOURCE = """package main

import (
\t"os"
\t"os/signal"
\t"syscall"
)

func main() {
\tstop := make(chan os.Signal, 1)
\tsignal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
\tchildren := make(chan os.Signal, 8)
\tsignal.Notify(children, syscall.SIGCHLD)
\tfor {
\t\tselect {
\t\tcase <-stop:
\t\t\tos.Exit(0)
\t\tcase <-children:
\t\t\tfor {
\t\t\t\tvar status syscall.WaitStatus
\t\t\t\tif pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil); pid <= 0 || err != nil {
\t\t\t\t\tbreak
\t\t\t\t}
\t\t\t}
\t\t}
\t}
}
"""


def build_pause() -> None:
    """The static binary of the lab's sandbox image (node_images.py packs it; no registry here)."""
    out = BIN / "pause"
    if out.exists():
        log("pause: cached")
        return
    source = LAB / "pause-module"
    source.mkdir(parents=True, exist_ok=True)
    (source / "go.mod").write_text("module k8slab.local/pause\n\ngo 1.26\n")
    (source / "main.go").write_text(PAUSE_SOURCE)
    tmp = out.with_suffix(".tmp")
    run(
        ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(tmp), "."],
        cwd=source,
        log_name="pause",
    )
    tmp.rename(out)
    log("pause: built")


def module_dir(module: str, version: str) -> Path:
    out = run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        cwd=LAB,
        log_name="module-paths",
        capture=True,
    )
    return Path(json.loads(out)["Dir"])


def write_paths() -> None:
    """Where the run step finds kwok's stage files and KubeRay's CRDs."""
    paths = {
        "kwok_module": str(module_dir("sigs.k8s.io/kwok", "v0.8.0")),
        "kuberay_module": str(module_dir(KUBERAY_MODULE, KUBERAY_VERSION)),
    }
    (LAB / "paths.json").write_text(json.dumps(paths, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="build just these binaries (by name)")
    parser.add_argument("--node", action="store_true", help="what k8s-node needs (all but kwok)")
    args = parser.parse_args()
    if shutil.which("go") is None:
        raise SystemExit("k8s-lab build: `go` not found (Go >= 1.26 is needed)")
    LAB.mkdir(parents=True, exist_ok=True)
    BIN.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only) if args.only else None
    if args.node:
        wanted = (wanted or set(ALL_NAMES)) - set(LAB_ONLY)
    start = time.monotonic()
    log(f"into {LAB} (go caches there too; logs in {LOGS})")
    kube = [b for b in KUBE_BINARIES if wanted is None or b.name in wanted]
    coredns = wanted is None or "coredns" in wanted
    if any(not (BIN / b.name).exists() for b in kube) or (
        coredns and not (BIN / "coredns").exists()
    ):
        write_module()
    for binary in kube:
        build_kube(binary)
    if coredns:
        build_coredns()  # right after the kube binaries: their packages are in the build cache
    for tool in GO_INSTALLS:
        if wanted is None or tool.name in wanted:
            go_install(tool)
    if wanted is None or "pause" in wanted:
        build_pause()
    if not (LAB / "paths.json").exists():
        write_paths()
    built = ", ".join(sorted(p.name for p in BIN.iterdir()))
    log(f"done in {time.monotonic() - start:.0f}s: {built}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
