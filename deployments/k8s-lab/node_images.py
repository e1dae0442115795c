"""Container images for the real node, made here: no registry is reachable.

- `k8s-lab.local/pause:3.10`: containerd's sandbox image, the static `pause` binary that
  build.py compiles from a few lines of Go (it waits for a signal and reaps children).
- `k8s-lab.local/busybox:1.35`: Debian's busybox-static with its applets as symlinks, for the
  node's proof workload (httpd, nslookup, wget).

Both are written as OCI image layouts in a tar archive (one layer, a config, a manifest, an
index), the format `ctr images import` reads, by the pure `oci_layout()`. The images helper's
archives (.k8s-lab/images/index.json: {"<image ref>": "<file>.tar"}) are imported the same way.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node_config import SANDBOX_IMAGE

BUSYBOX_IMAGE = "k8s-lab.local/busybox:1.35"
BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static
BUSYBOX_APPLETS = (
    "sh", "httpd", "nslookup", "wget", "nc", "sleep", "cat", "echo", "hostname", "mkdir", "ls",
    "ps", "ip", "awk", "grep", "seq", "head", "tail", "sort", "uniq", "wc",
)  # fmt: skip
EPOCH = 0  # fixed mtimes: the same inputs give the same digests


@dataclass(frozen=True)
class Entry:
    """One file of an image layer: bytes, or a symlink target."""

    path: str
    data: bytes = b""
    mode: int = 0o644
    link: str | None = None


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def layer_tar(entries: list[Entry]) -> bytes:
    """An uncompressed layer: its parent directories first, then the entries, all root-owned."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(e.path).parent) for e in entries} - {"."})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            tar.addfile(info)
        for e in entries:
            info = tarfile.TarInfo(e.path)
            info.mtime = EPOCH
            if e.link is not None:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, e.link, 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(e.data), e.mode
                tar.addfile(info, io.BytesIO(e.data))
    return out.getvalue()


def oci_layout(ref: str, entries: list[Entry], entrypoint: list[str]) -> dict[str, bytes]:
    """The files of an OCI image layout (path in the archive -> bytes) holding one image."""
    layer = layer_tar(entries)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": entrypoint, "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _digest(layer),
                    "size": len(layer),
                }
            ],
        },
        sort_keys=True,
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": _digest(manifest),
                "size": len(manifest),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {"org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1]},
            }
        ],
    }
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index, sort_keys=True).encode(),
    }
    for blob in (layer, config, manifest):
        files[f"blobs/sha256/{_digest(blob).split(':', 1)[1]}"] = blob
    return files


def write_archive(path: Path, files: dict[str, bytes]) -> None:
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, EPOCH
            tar.addfile(info, io.BytesIO(data))
    tmp.rename(path)


def busybox_entries(busybox: bytes) -> list[Entry]:
    links = [Entry(f"bin/{applet}", link="busybox") for applet in BUSYBOX_APPLETS]
    return [Entry("bin/busybox", busybox, 0o755), *links, Entry("tmp/.keep"), Entry("etc/.keep")]


def build_node_images(bin_dir: Path, out_dir: Path) -> dict[str, Path]:
    """The pause and busybox archives (made once; they depend only on their two binaries)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pause = bin_dir / "pause"
    if not pause.exists():
        raise SystemExit(f"k8s-node: {pause} is missing: run deployments/k8s-lab/build.py")
    if not BUSYBOX.exists():
        raise SystemExit("k8s-node: /bin/busybox is missing: apt-get install busybox-static")
    wanted = {
        SANDBOX_IMAGE: (
            out_dir / "pause.tar",
            [Entry("pause", pause.read_bytes(), 0o755)],
            ["/pause"],
        ),
        BUSYBOX_IMAGE: (
            out_dir / "busybox.tar",
            busybox_entries(BUSYBOX.read_bytes()),
            ["/bin/sh"],
        ),
    }
    archives: dict[str, Path] = {}
    for ref, (path, entries, entrypoint) in wanted.items():
        if not path.exists():
            write_archive(path, oci_layout(ref, entries, entrypoint))
        archives[ref] = path
    return archives


def helper_archives(images_dir: Path) -> dict[str, Path]:
    """The images helper's archives from its index.json; none if it has not built any."""
    index = images_dir / "index.json"
    if not index.exists():
        return {}
    named: dict[str, Any] = json.loads(index.read_text())
    if not isinstance(named, dict) or not all(isinstance(v, str) for v in named.values()):
        raise SystemExit(f'k8s-node: {index} must map "<image ref>" to "<file>.tar"')
    archives = {ref: images_dir / name for ref, name in named.items()}
    missing = [str(p) for p in archives.values() if not p.exists()]
    if missing:
        raise SystemExit(f"k8s-node: {index} names archives that do not exist: {missing}")
    return archives


def import_images(
    ctr: Callable[..., str], archives: dict[str, Path], lab_error: type[Exception] = RuntimeError
) -> list[str]:
    """Import each archive into containerd's k8s.io namespace under its ref; the refs imported."""
    for ref, path in archives.items():
        # A tag-only name in the archive goes into ref's repository (--base-name). Without it
        # ctr names the image `import-<date>:<tag>` for a day, the CRI plugin may take that name
        # for the image, and kubelet then found no image ("import-...: not found").
        repository = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
        try:
            ctr("images", "import", "--base-name", repository, str(path))
        except lab_error as exc:  # e.g. a full reference in the archive: not a tag for a base
            print(f"  ({path.name}: {exc}; naming its index instead)", flush=True)
        if ref not in ctr("images", "ls", "-q").split():
            # The archive names its image otherwise: name its top index `ref`.
            ctr("images", "import", "--index-name", ref, str(path))
    listed = ctr("images", "ls", "-q").split()
    generated = [name for name in listed if name.startswith("import-")]
    if generated:
        ctr("images", "rm", *generated)
    missing = [ref for ref in archives if ref not in listed]
    if missing:
        raise SystemExit(f"k8s-node: imported but not listed by containerd: {missing}")
    return sorted(archives)
