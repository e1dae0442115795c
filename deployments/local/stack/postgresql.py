"""PostgreSQL for FerretDB's postgresql backend: a private cluster of Debian's `postgresql` package.

Only part of the stack when VOTES_STACK_FERRETDB_BACKEND=postgresql
(docs/decisions/0015-ferretdb-backend.md). The cluster lives under the stack's data folder, listens
on 127.0.0.1:VOTES_POSTGRES_PORT and its own socket folder, trusts local connections (nothing but
loopback reaches it) and never uses the package's system service or its `main` cluster. PostgreSQL
refuses to run as root: as root, the stack runs it as the package's `postgres` user.
"""

import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from deployments.local.stack import installing
from deployments.local.stack.config import Config
from deployments.local.stack.errors import StackError
from deployments.local.stack.service import Service

POSTGRES_ROOT = Path("/usr/lib/postgresql")  # Debian's layout: /usr/lib/postgresql/<major>/bin
SUPERUSER = "postgres"
DATABASE = "ferretdb"
# Settings of the private cluster (postgres -c ...): durable commits, like Redis's fsync always.
SERVER_SETTINGS: tuple[tuple[str, str], ...] = (
    ("listen_addresses", "127.0.0.1"),
    ("fsync", "on"),
    ("synchronous_commit", "on"),
    ("max_connections", "200"),  # FerretDB pools connections per client; tests open many
    ("shared_buffers", "128MB"),
)


def installed_bin_dir(root: Path | None = None) -> Path | None:
    """The bin folder of the newest installed PostgreSQL major version, if any."""
    root = root or POSTGRES_ROOT
    versions = []
    for child in root.glob("*/bin/postgres") if root.is_dir() else ():
        major = child.parent.parent.name
        if re.fullmatch(r"[0-9]+", major):
            versions.append((int(major), child.parent))
    return max(versions)[1] if versions else None


def server_user() -> str | None:
    """Who runs the server: None (ourselves) unless we are root, then the package's user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise StackError(
            f"PostgreSQL cannot run as root and there is no {SUPERUSER!r} user to run it as "
            "(Debian's postgresql package creates it)",
            "postgresql",
        ) from None
    return SUPERUSER


class PostgreSQL(Service):
    name = "postgresql"
    port_variables = "VOTES_POSTGRES_PORT"

    def __init__(self, config: Config, say: Callable[[str], None]) -> None:
        super().__init__(config, say)
        self._database_ready = False

    @property
    def bin_dir(self) -> Path:
        found = installed_bin_dir()
        if found is None:
            raise StackError(
                f"PostgreSQL is not installed (no {POSTGRES_ROOT}/<version>/bin/postgres); "
                "`python -m deployments.local.stack install` installs Debian's postgresql",
                "postgresql",
            )
        return found

    @property
    def cluster_dir(self) -> Path:
        return self.data_dir / "cluster"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "socket"

    def ports(self) -> tuple[int, ...]:
        return (self.config.postgres_port,)

    def url(self) -> str:
        """What FerretDB connects to."""
        return f"postgres://{SUPERUSER}@127.0.0.1:{self.config.postgres_port}/{DATABASE}"

    def install(self) -> None:
        if installed_bin_dir() is not None:
            return
        if os.geteuid() != 0:
            raise StackError(
                "PostgreSQL is not installed and the stack is not run as root; install it with "
                "`sudo apt-get install -y postgresql` (its system service is not used)",
                "postgresql",
            )
        self._say(
            "installing postgresql with apt-get (Debian package; its service is not used) ..."
        )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        installing.run(["apt-get", "update", "-q"], part="postgresql", env=env)
        installing.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"],
            part="postgresql",
            env=env,
        )

    def run_as(self) -> str | None:
        return server_user()

    def prepare(self) -> None:
        """Create the cluster on the first start (initdb), owned by the user that runs it."""
        user = self.run_as()
        for path in (self.data_dir, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            if user is not None:
                shutil.chown(path, user)
        if user is not None and (closed := first_closed_folder(self.data_dir, user)) is not None:
            raise StackError(
                f"PostgreSQL runs as {user!r}, who cannot enter {closed} (mode "
                f"{closed.stat().st_mode & 0o777:o}); give others search access "
                f"(`chmod o+x {closed}`) or put the stack elsewhere (VOTES_STACK_DIR)",
                "postgresql",
            )
        if (self.cluster_dir / "PG_VERSION").exists():
            return
        self._say(f"postgresql: creating a private cluster in {self.cluster_dir} (initdb) ...")
        installing.run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.cluster_dir),
                f"--username={SUPERUSER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            part="postgresql",
            user=user,
        )

    def command(self) -> list[str]:
        settings = [arg for name, value in SERVER_SETTINGS for arg in ("-c", f"{name}={value}")]
        return [
            str(self.bin_dir / "postgres"),
            "-D", str(self.cluster_dir),
            "-p", str(self.config.postgres_port),
            "-k", str(self.socket_dir),
            *settings,
        ]  # fmt: skip

    def is_ours(self, pid: int, argv: list[str]) -> bool:
        return argv[0].endswith("/postgres") and str(self.cluster_dir) in argv

    def check(self, timeout_s: float, provision: bool) -> str | None:
        """pg_isready; during startup also create FerretDB's database once."""
        ready = self._client(
            "pg_isready",
            "-d",
            "postgres",
            "-t",
            str(max(1, int(timeout_s))),
            timeout_s=timeout_s + 2,
        )
        if ready.returncode != 0:
            return (ready.stdout + ready.stderr).strip() or f"pg_isready exited {ready.returncode}"
        if provision and not self._database_ready:
            self._ensure_database(timeout_s)
        return None

    def _ensure_database(self, timeout_s: float) -> None:
        query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"
        found = self._client("psql", "-d", "postgres", "-tAc", query, timeout_s=timeout_s + 2)
        if found.returncode != 0:
            raise StackError(f"psql failed: {found.stderr.strip()}", "postgresql", self.log_path)
        if found.stdout.strip() != "1":
            created = self._client("createdb", DATABASE, timeout_s=timeout_s + 10)
            if created.returncode != 0:
                raise StackError(
                    f"createdb {DATABASE} failed: {created.stderr.strip()}",
                    "postgresql",
                    self.log_path,
                )
            self._say(f"postgresql: created the database {DATABASE!r}")
        self._database_ready = True

    def _client(
        self, program: str, *args: str, timeout_s: float
    ) -> subprocess.CompletedProcess[str]:
        """A PostgreSQL client program against our cluster over loopback TCP."""
        return subprocess.run(
            [
                str(self.bin_dir / program),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.config.postgres_port),
                "-U",
                SUPERUSER,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            env={**os.environ, "PGCONNECT_TIMEOUT": str(max(2, int(timeout_s)))},
        )


def first_closed_folder(path: Path, user: str) -> Path | None:
    """The first folder on the way to `path` that `user` may not enter, or None."""
    for folder in [*reversed(path.parents), path]:
        entered = subprocess.run(["test", "-x", str(folder)], user=user, check=False)
        if entered.returncode != 0:
            return folder
    return None
