"""`python deployments/k8s-lab/images.py build [--only NAME...]`: the lab's images, cached.

Writes into .k8s-lab/images/ (git-ignored): <name>.tar (an OCI archive naming the image by its
reference), <name>.inputs (the input hash it was built from) and index.json, {reference: archive}
of the images the node imports. An image whose input hash has not changed is not rebuilt.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from deployments.lab_images import base, services
from deployments.lab_images.buildah import Buildah, BuildError
from deployments.lab_images.context import BuildContext
from deployments.lab_images.recipe import ImageSpec, index, input_hash, selected

REPO = Path(__file__).resolve().parents[2]
SPECS: tuple[ImageSpec, ...] = (
    base.DEBIAN,
    base.RAY_BASE,
    base.VOTES,
    services.REDIS,
    services.FERRETDB,
    services.KAFKA,
)
TOOLS = {"debootstrap": "debootstrap", "buildah": "buildah", "tar": "tar"}
HOST_CERTS = Path("/etc/ssl/certs")


def images_dir() -> Path:
    lab = Path(os.environ.get("K8S_LAB_DIR", REPO / ".k8s-lab"))
    return lab.resolve() / "images"


def say(message: str, started: float | None = None) -> None:
    elapsed = f" ({time.monotonic() - started:.0f}s)" if started is not None else ""
    print(f"[{time.strftime('%H:%M:%S')}] {message}{elapsed}", flush=True)


def size_text(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.0f} MB"


def builder_of(spec: ImageSpec, by_name: dict[str, ImageSpec]) -> Callable[[BuildContext], None]:
    if spec.name == base.DEBIAN.name:
        return lambda ctx: base.build_debian(spec, ctx)
    if spec.name == base.VOTES.name:
        return lambda ctx: base.build_votes(spec, ctx)
    assert spec.base is not None
    base_ref = by_name[spec.base].ref
    return lambda ctx: base.build_layered(spec, ctx, base_ref)


def build(ctx: BuildContext, specs: Sequence[ImageSpec], smoke: bool) -> None:
    by_name = {spec.name: spec for spec in SPECS}
    hashes: dict[str, str] = {}
    for spec in specs:
        archive = ctx.images / f"{spec.name}.tar"
        stamp = ctx.images / f"{spec.name}.inputs"
        digest = input_hash(spec, ctx.root, hashes.get(spec.base) if spec.base else None)
        hashes[spec.name] = digest
        if archive.exists() and stamp.exists() and stamp.read_text() == digest:
            say(f"{spec.name}: cached, {size_text(archive)} ({archive.name}, inputs {digest[:12]})")
            continue
        if spec.base is not None:
            base_spec = by_name[spec.base]
            if not ctx.buildah.has_image(base_spec.ref):
                ctx.buildah.load(ctx.images / f"{base_spec.name}.tar", base_spec.ref)
        started = time.monotonic()
        say(f"{spec.name}: building {spec.ref} (inputs {digest[:12]}) ...")
        stamp.unlink(missing_ok=True)
        builder_of(spec, by_name)(ctx)
        ctx.buildah.export(spec.ref, archive)
        stamp.write_text(digest)
        say(f"{spec.name}: built, {size_text(archive)} ({archive.name})", started)
    if smoke and any(spec.name == base.VOTES.name for spec in specs):
        started = time.monotonic()
        if not ctx.buildah.has_image(base.VOTES.ref):
            ctx.buildah.load(ctx.images / f"{base.VOTES.name}.tar", base.VOTES.ref)
        output = base.smoke_test_votes(ctx, base.VOTES.ref)
        say("votes: smoke test inside the image:\n    " + output.replace("\n", "\n    "), started)


def write_index(images: Path) -> Path:
    present = [spec for spec in SPECS if (images / f"{spec.name}.tar").exists()]
    path = images / "index.json"
    path.write_text(json.dumps(index(present), indent=2, sort_keys=True) + "\n")
    return path


def missing_inputs(specs: Sequence[ImageSpec]) -> list[str]:
    return [
        f"{spec.name}: {entry} is missing ({services.STACK_HINT})"
        for spec in specs
        for entry in spec.inputs
        if not (REPO / entry).exists()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="images.py", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("build",))
    names = [spec.name for spec in SPECS]
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"of {names} (and their bases)")
    parser.add_argument(
        "--smoke", action="store_true", help="import serve_app.app in the votes image"
    )
    args = parser.parse_args(argv)
    try:
        specs = selected(SPECS, args.only)
    except ValueError as exc:
        parser.error(str(exc))
    absent = [tool for tool in TOOLS if shutil.which(tool) is None]
    if absent:
        print(
            f"images: missing tools {absent}: apt-get install debootstrap buildah", file=sys.stderr
        )
        return 2
    if os.geteuid() != 0:
        print("images: run as root (debootstrap, buildah's storage)", file=sys.stderr)
        return 2
    problems = missing_inputs(specs)
    if problems:
        print("images: " + "\n  ".join(problems), file=sys.stderr)
        return 2
    images = images_dir()
    images.mkdir(parents=True, exist_ok=True)
    ctx = BuildContext(
        root=REPO,
        images=images,
        buildah=Buildah(
            storage=images / "storage",
            run_root=Path("/run/votes-lab-images"),
            log=images / "build.log",
            download_mounts=(f"{HOST_CERTS}:/etc/ssl/certs:ro",) if HOST_CERTS.is_dir() else (),
        ),
    )
    os.nice(10)  # the machine is shared: builds yield to tests
    started = time.monotonic()
    try:
        build(ctx, specs, args.smoke)
    except BuildError as exc:
        print(f"images: {exc}\n(full log: {ctx.log})", file=sys.stderr)
        return 1
    finally:
        say(f"index: {write_index(images)}")
    say(f"done: {', '.join(spec.name for spec in specs)}", started)
    return 0
