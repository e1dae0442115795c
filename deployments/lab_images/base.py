"""The Debian 12 root file system, the stand-in Ray base image on it, and the votes image.

The stand-in imitates what KubeRay and our Dockerfile rely on in `rayproject/ray:2.60.0-py311`
(docs/kubernetes.md, "The real node: lab-only differences", says where each was read):
- user `ray`, uid 1000, group `users` (gid 100), home /home/ray, the working directory, sudo
  without a password (ray-project/ray docker/base-deps/Dockerfile);
- `python`, `pip` and `ray` first on the PATH from /home/ray/anaconda3/bin, owned by `ray` so the
  Dockerfile's `pip install` (run as ray) works: upstream's conda, here a venv of Debian's
  python3, the same minor (3.11);
- /bin/bash, which KubeRay runs every command with (`/bin/bash -c -- ...`), `wget` and `grep`
  of its probes, `ray health-check` of its wait-gcs-ready init container (KubeRay v1.6.2
  ray-operator/controllers/ray/common/pod.go, utils/constant.go, utils/util.go);
- LANG/LC_ALL C.UTF-8, as upstream sets them for Click.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from deployments.lab_images.context import BuildContext
from deployments.lab_images.recipe import ImageSpec

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SOURCES = (
    f"deb {DEBIAN_MIRROR} bookworm main\n"
    f"deb {DEBIAN_MIRROR} bookworm-updates main\n"
    "deb http://deb.debian.org/debian-security bookworm-security main\n"
)
# pyproject.toml's pin; tests/unit/deployments/lab_images/test_recipe.py keeps them equal.
RAY_VERSION = "2.60.0"
RAY_HOME = "/home/ray"
RAY_PYTHON_ENV = f"{RAY_HOME}/anaconda3"  # upstream's path; a venv here, not conda
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEBIAN = ImageSpec(
    name="debian",
    ref="votes-lab.local/debian:bookworm",
    base=None,
    recipe={
        "debootstrap": ["--variant=minbase", DEBIAN_SUITE, DEBIAN_MIRROR],
        "sources.list": DEBIAN_SOURCES,
        "upgrade": "apt-get update && apt-get -y upgrade",
    },
    deployable=False,
)

RAY_BASE = ImageSpec(
    name="ray-base",
    ref=f"votes-lab.local/ray:{RAY_VERSION}-py311",
    base="debian",
    recipe={
        "packages": [
            "bash",
            "ca-certificates",
            "grep",
            "netbase",
            "procps",
            "python3",
            "python3-venv",
            "sudo",
            "tzdata",
            "wget",
        ],
        "copies": [["requirements.lock", "/tmp/build/requirements.lock"]],
        "steps": [
            [
                "0:0",
                False,
                (
                    "useradd -ms /bin/bash -d /home/ray ray --uid 1000 --gid 100\n"
                    "usermod -aG sudo ray\n"
                    "echo 'ray ALL=NOPASSWD: ALL' >> /etc/sudoers\n"
                    f"python3 -m venv {RAY_PYTHON_ENV}\n"
                    f"chown -R ray:users {RAY_PYTHON_ENV} /tmp/build"
                ),
            ],
            [
                "1000:100",
                True,
                (
                    # pip as Debian ships it trusts only its own CA list; PIP_CERT, the system's
                    # (the host's, mounted for this step). Newer pip uses the system's itself.
                    "export PIP_CERT=/etc/ssl/certs/ca-certificates.crt\n"
                    f"{RAY_PYTHON_ENV}/bin/pip install --no-cache-dir --upgrade pip\n"
                    f"{RAY_PYTHON_ENV}/bin/pip install --no-cache-dir"
                    f" --constraint /tmp/build/requirements.lock 'ray[serve]=={RAY_VERSION}'"
                ),
            ],
            ["0:0", False, "rm -rf /tmp/build"],
        ],
        "config": {
            "user": "1000",
            "workingdir": RAY_HOME,
            "env": {
                "PATH": f"{RAY_PYTHON_ENV}/bin:{SYSTEM_PATH}",
                "HOME": RAY_HOME,
                "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8",
            },
            "cmd": ["/bin/bash"],
        },
    },
    inputs=("requirements.lock",),
    deployable=False,
)

# The votes image is the repository's Dockerfile, unchanged, on the stand-in (its ARG).
VOTES_CONTEXT = (
    "Dockerfile",
    "pyproject.toml",
    "requirements.lock",
    "README.md",
    "proto",
    "serve_app",
)
VOTES = ImageSpec(
    name="votes",
    ref="votes-lab.local/votes:lab",
    base="ray-base",
    recipe={"dockerfile": "Dockerfile", "build_args": {"RAY_BASE_IMAGE": RAY_BASE.ref}},
    inputs=VOTES_CONTEXT,
)


def build_debian(spec: ImageSpec, ctx: BuildContext) -> None:
    """debootstrap into a work directory, packed into an image of one layer, then upgraded."""
    rootfs = ctx.work / "debian.rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    ctx.work.mkdir(parents=True, exist_ok=True)
    ctx.command(["debootstrap", *spec.recipe["debootstrap"][:2], str(rootfs), DEBIAN_MIRROR])
    (rootfs / "etc/apt/sources.list").write_text(spec.recipe["sources.list"])
    shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
    archive = ctx.work / "debian.rootfs.tar"
    ctx.command(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(archive), "."])
    shutil.rmtree(rootfs)
    container = ctx.buildah.from_scratch()
    try:
        ctx.buildah.add(container, archive, "/")
        ctx.buildah.sh(
            container,
            f"{spec.recipe['upgrade']}\napt-get clean\nrm -rf /var/lib/apt/lists/*",
            step="debian upgrade",
        )
        ctx.buildah.config(
            container, {"env": {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"}, "cmd": ["/bin/bash"]}
        )
        ctx.buildah.commit(container, spec.ref)
    except BaseException:
        ctx.buildah.remove_container(container)
        raise
    finally:
        archive.unlink(missing_ok=True)


def build_layered(spec: ImageSpec, ctx: BuildContext, base_ref: str) -> None:
    """The generic recipe: Debian packages, copies from the repository, shell steps, config."""
    recipe = spec.recipe
    container = ctx.buildah.from_image(base_ref)
    try:
        packages = recipe.get("packages") or []
        if packages:
            ctx.buildah.sh(
                container,
                "apt-get update\n"
                "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
                + " ".join(packages)
                + "\napt-get clean\nrm -rf /var/lib/apt/lists/*",
                step=f"{spec.name}: apt-get install",
            )
        for source, dest in recipe.get("copies") or []:
            ctx.buildah.add(container, ctx.root / source, dest)
        for user, downloads, script in recipe.get("steps") or []:
            step = f"{spec.name}: {script.split()[0]}"
            ctx.buildah.sh(container, script, user=user, downloads=downloads, step=step)
        ctx.buildah.config(container, recipe["config"])
        ctx.buildah.commit(container, spec.ref)
    except BaseException:
        ctx.buildah.remove_container(container)
        raise


def build_votes(spec: ImageSpec, ctx: BuildContext) -> None:
    """The Dockerfile as it is, in a context of exactly the hashed inputs (no caches, no .venv)."""
    with tempfile.TemporaryDirectory(dir=ctx.work, prefix="votes-context.") as tmp:
        context = Path(tmp)
        for entry in spec.inputs:
            source = ctx.root / entry
            if source.is_dir():
                shutil.copytree(
                    source, context / entry, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                shutil.copy2(source, context / entry)
        ctx.buildah.bud(
            context, context / spec.recipe["dockerfile"], spec.ref, spec.recipe["build_args"]
        )


def smoke_test_votes(ctx: BuildContext, ref: str) -> str:
    """`python -c "import serve_app.app"` inside the built image, as its user; the output."""
    container = ctx.buildah.from_image(ref)
    try:
        return ctx.buildah.run(
            "run",
            "--isolation",
            "chroot",
            container,
            "--",
            "bash",
            "-c",
            "id; command -v python pip ray wget; python --version; "
            "python -c 'import ray, serve_app.app; "
            'print("serve_app.app imported, ray", ray.__version__)\'',
            step="smoke test",
        )
    finally:
        ctx.buildah.remove_container(container)
