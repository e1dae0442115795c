"""Where a build works and writes: the repository, .k8s-lab/images, buildah, the log."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from deployments.lab_images.buildah import Buildah, BuildError


@dataclass(frozen=True)
class BuildContext:
    root: Path  # the repository: every input path is relative to it
    images: Path  # .k8s-lab/images: <name>.tar, <name>.inputs, index.json
    buildah: Buildah

    @property
    def work(self) -> Path:
        return self.images / "work"

    @property
    def log(self) -> Path:
        return self.buildah.log

    def command(self, argv: list[str]) -> None:
        """A command other than buildah (debootstrap, tar); output to the log."""
        with self.log.open("a") as log:
            log.write(f"$ {' '.join(argv)}\n")
            log.flush()
            code = subprocess.run(
                argv, stdout=log, stderr=subprocess.STDOUT, check=False
            ).returncode
        if code != 0:
            tail = "\n".join(self.log.read_text().splitlines()[-15:])
            raise BuildError(f"{argv[0]} failed ({code}):\n{tail}")
