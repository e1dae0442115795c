"""FerretDB (MongoDB wire protocol on SQLite or PostgreSQL): built with Go from the module proxy.

The backend is VOTES_STACK_FERRETDB_BACKEND (docs/decisions/0015-ferretdb-backend.md).
"""

import contextlib
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deployments.local.stack import installing
from deployments.local.stack.config import Config, show
from deployments.local.stack.errors import StackError
from deployments.local.stack.service import Service

FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.2"
# Source patches as (file, original, replacement); the set is hashed into the build stamp, so a
# changed patch rebuilds the binary.
FERRETDB_PATCHES: tuple[tuple[str, str, str], ...] = (
    # Filter on the indexed _id expression: docs/decisions/0004-ferretdb-id-index-patch.md
    (
        "internal/backends/sqlite/metadata/metadata.go",
        "IDColumn = DefaultColumn + \"->'$._id'\"",
        "IDColumn = DefaultColumn + \"->'_id'\"",
    ),
)
FERRETDB_BUILD = (
    FERRETDB_VERSION + "+" + hashlib.sha256(repr(FERRETDB_PATCHES).encode()).hexdigest()[:12]
)


class FerretDB(Service):
    name = "ferretdb"
    port_variables = "VOTES_MONGO_PORT / VOTES_FERRETDB_DEBUG_PORT"

    def __init__(self, config: Config, say: Callable[[str], None]) -> None:
        super().__init__(config, say)
        self._mongo: Any = None  # pymongo.MongoClient, created on the first health check

    @property
    def binary(self) -> Path:
        return self.config.root / "bin" / "ferretdb"

    @property
    def state_dir(self) -> Path:
        return self.config.root / "state" / "ferretdb"

    @property
    def _stamp_file(self) -> Path:
        return self.binary.with_name("ferretdb.build")

    def ports(self) -> tuple[int, ...]:
        debug = self.config.ferretdb_debug_port
        return (self.config.mongo_port, *((debug,) if debug else ()))

    def install(self) -> None:
        if self._installed_version() == FERRETDB_VERSION and self._build_stamp() == FERRETDB_BUILD:
            return
        go = installing.which("go", "ferretdb")
        self._say(
            f"building FerretDB {FERRETDB_VERSION} with go into {show(self.binary)}"
            " (seconds with a warm Go build cache, a few minutes on a fresh machine) ..."
        )
        # `go install module@version` builds a binary that panics at start: the module zip lacks
        # the generated build/version/version.txt. So build from a writable copy of the module
        # source with that file added (-overlay cannot replace files inside GOMODCACHE).
        env = self.go_env()
        listing = installing.run(
            [go, "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
            "ferretdb",
            env,
        )
        source = self.config.root / "src" / f"ferretdb-{FERRETDB_VERSION}"
        installing.rmtree_writable(source)
        shutil.copytree(Path(json.loads(listing)["Dir"]), source)
        installing.make_writable(source)
        (source / "build" / "version" / "version.txt").write_text(f"{FERRETDB_VERSION}\n")
        apply_patches(source)
        self.binary.parent.mkdir(parents=True, exist_ok=True)
        partial = self.binary.with_name("ferretdb.partial")
        installing.run(
            [go, "build", "-buildvcs=false", "-o", str(partial), "./cmd/ferretdb"],
            "ferretdb",
            env,
            cwd=source,
        )
        partial.replace(self.binary)
        self._stamp_file.write_text(FERRETDB_BUILD + "\n")
        installing.rmtree_writable(source)
        with contextlib.suppress(OSError):
            source.parent.rmdir()  # src/ only exists during the build
        if self._installed_version() != FERRETDB_VERSION:
            raise StackError(
                f"the FerretDB build at {self.binary} does not report {FERRETDB_VERSION}",
                "ferretdb",
            )

    def go_env(self) -> dict[str, str]:
        return installing.go_env(self.config.cache_dir)

    def prepare(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        cfg = self.config
        debug = f"127.0.0.1:{cfg.ferretdb_debug_port}" if cfg.ferretdb_debug_port else "-"
        if cfg.ferretdb_backend == "postgresql":
            from deployments.local.stack.postgresql import PostgreSQL

            backend = [
                "--handler=postgresql",
                f"--postgresql-url={PostgreSQL(cfg, self._say).url()}",
            ]
        else:
            backend = ["--handler=sqlite", f"--sqlite-url=file:{self.data_dir}/"]
        return [
            str(self.binary),
            *backend,
            f"--state-dir={self.state_dir}",
            f"--listen-addr=127.0.0.1:{cfg.mongo_port}",
            f"--debug-addr={debug}",
            "--telemetry=disable",
            "--log-format=console",
        ]

    def is_ours(self, pid: int, argv: list[str]) -> bool:
        return argv[0] == str(self.binary)

    def check(self, timeout_s: float, provision: bool) -> str | None:
        """The `ping` command."""
        import pymongo

        # One client per Stack, never closed: FerretDB 1.x does not implement endSessions, which
        # pymongo sends on close(), and logs every such failed command as a 15-line WARN.
        if self._mongo is None:
            self._mongo = pymongo.MongoClient(
                "127.0.0.1",
                self.config.mongo_port,
                directConnection=True,
                serverSelectionTimeoutMS=3000,
                connect=False,
            )
        with pymongo.timeout(timeout_s):
            reply = self._mongo.admin.command("ping")
        return None if reply.get("ok") == 1 else f"ping replied {reply}"

    def _build_stamp(self) -> str | None:
        try:
            return self._stamp_file.read_text().strip()
        except OSError:
            return None

    def _installed_version(self) -> str | None:
        if not self.binary.exists():
            return None
        try:
            result = subprocess.run(
                [str(self.binary), "--version"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            return None
        match = re.search(r"^version: (\S+)", result.stdout, re.MULTILINE)
        return match.group(1) if result.returncode == 0 and match else None


def apply_patches(source: Path) -> None:
    """Apply FERRETDB_PATCHES to a copy of the module source; each original must occur once."""
    for relative, original, replacement in FERRETDB_PATCHES:
        target = source / relative
        text = target.read_text()
        if text.count(original) != 1:
            raise StackError(
                f"cannot apply a FerretDB patch: {relative} does not contain {original!r}"
                " exactly once (was FERRETDB_VERSION changed without updating FERRETDB_PATCHES?)",
                "ferretdb",
            )
        target.write_text(text.replace(original, replacement))
