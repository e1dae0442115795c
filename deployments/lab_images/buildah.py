"""buildah, with a storage of the lab's own (.k8s-lab/images/storage), never the machine's.

Every step is a buildah command line; the builder modules say what to run, this module how.
RUN steps use chroot isolation and the host's network: the build runs as root outside any
network namespace, so the Debian mirror and PyPI are reachable, and chroot needs no runc.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class BuildError(RuntimeError):
    """A build step failed; the message names the step and the end of its output."""


@dataclass(frozen=True)
class Buildah:
    storage: Path  # image and container storage (overlay driver)
    run_root: Path  # buildah's state of running containers
    log: Path  # every command's output is appended here
    # Bind mounts of RUN steps that download from PyPI: the host's CA certificates, since this
    # machine's HTTPS goes through a proxy whose CA only the host trusts. Mounted, never copied:
    # no image carries them.
    download_mounts: tuple[str, ...] = ()

    def _global(self) -> list[str]:
        return ["buildah", "--root", str(self.storage), "--runroot", str(self.run_root)]

    def run(self, *args: str, step: str) -> str:
        """One buildah command; its output goes to the log, stdout is returned stripped."""
        command = [*self._global(), *args]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            result = subprocess.run(
                command, stdout=subprocess.PIPE, stderr=log, text=True, check=False
            )
            log.write(result.stdout)
        if result.returncode != 0:
            tail = "\n".join(self.log.read_text().splitlines()[-15:])
            raise BuildError(f"{step}: buildah {args[0]} failed ({result.returncode}):\n{tail}")
        return result.stdout.strip()

    def has_image(self, ref: str) -> bool:
        command = [*self._global(), "inspect", "--type", "image", ref]
        return subprocess.run(command, capture_output=True, check=False).returncode == 0

    def from_image(self, ref: str) -> str:
        """A working container from a local image (never pulled: no registry is reachable)."""
        return self.run("from", "--pull-never", "--quiet", ref, step=f"from {ref}")

    def from_scratch(self) -> str:
        return self.run("from", "--quiet", "scratch", step="from scratch")

    def add(self, container: str, source: Path, dest: str, chown: str | None = None) -> None:
        """Copy a file or directory in; a local tar archive is extracted (buildah add's rule)."""
        owner = ["--chown", chown] if chown else []
        self.run("add", "--quiet", *owner, container, str(source), dest, step=f"add {source}")

    def sh(
        self, container: str, script: str, *, user: str = "0:0", downloads: bool = False, step: str
    ) -> None:
        """A shell script inside the container: chroot isolation, the host's network."""
        mounts = [arg for mount in self.download_mounts for arg in ("--volume", mount)]
        self.run(
            "run",
            "--isolation",
            "chroot",
            "--network",
            "host",
            "--user",
            user,
            *(mounts if downloads else []),
            container,
            "--",
            "/bin/sh",
            "-euc",
            script,
            step=step,
        )

    def config(self, container: str, settings: Mapping[str, object]) -> None:
        """Image config: user, workingdir, env (a mapping), entrypoint and cmd (JSON lists)."""
        args: list[str] = []
        for key, value in settings.items():
            if key == "env":
                assert isinstance(value, Mapping)
                for name, text in value.items():
                    args += ["--env", f"{name}={text}"]
            elif key in ("entrypoint", "cmd"):
                assert isinstance(value, Sequence)
                args += [f"--{key}", _json_list(value)]
            else:
                args += [f"--{key}", str(value)]
        self.run("config", *args, container, step="config")

    def commit(self, container: str, ref: str) -> None:
        self.run("commit", "--quiet", "--rm", container, ref, step=f"commit {ref}")

    def remove_container(self, container: str) -> None:
        subprocess.run([*self._global(), "rm", container], capture_output=True, check=False)

    def bud(self, context: Path, dockerfile: Path, ref: str, build_args: Mapping[str, str]) -> None:
        """`buildah bud` of a Dockerfile, with local images only as bases."""
        args = [
            arg for name, value in build_args.items() for arg in ("--build-arg", f"{name}={value}")
        ]
        mounts = [arg for mount in self.download_mounts for arg in ("--volume", mount)]
        self.run(
            "bud",
            "--isolation",
            "chroot",
            "--network",
            "host",
            "--pull-never",
            "--layers",
            *mounts,
            *args,
            "-f",
            str(dockerfile),
            "-t",
            ref,
            str(context),
            step=f"bud {ref}",
        )

    def export(self, ref: str, archive: Path) -> None:
        """An OCI archive whose index names the image by its full reference (for `ctr import`)."""
        partial = archive.with_name(archive.name + ".partial")
        partial.unlink(missing_ok=True)
        self.run("push", "--quiet", ref, f"oci-archive:{partial}:{ref}", step=f"export {ref}")
        partial.replace(archive)

    def load(self, archive: Path, ref: str) -> None:
        """Bring a cached archive back into the storage (a base an image above it needs)."""
        pulled = self.run("pull", "--quiet", f"oci-archive:{archive}", step=f"load {archive.name}")
        self.run("tag", pulled.splitlines()[-1], ref, step=f"tag {ref}")


def _json_list(items: Sequence[object]) -> str:
    return json.dumps([str(item) for item in items])
