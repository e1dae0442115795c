"""Where the stack lives and what it listens on (VOTES_* variables), and its folder layout."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deployments.local.stack.errors import StackError

REPO_ROOT = Path(__file__).resolve().parents[3]
LOCAL_DIR = REPO_ROOT / "deployments" / "local"
# What FerretDB stores its data in: docs/decisions/0015-ferretdb-backend.md
FERRETDB_BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Config:
    """Where the stack lives and what it listens on; every field has a VOTES_* override."""

    root: Path
    kafka_port: int
    kafka_controller_port: int
    redis_port: int
    mongo_port: int
    ferretdb_debug_port: int  # 0 disables FerretDB's HTTP debug/metrics listener
    ferretdb_backend: str  # one of FERRETDB_BACKENDS
    postgres_port: int  # the private PostgreSQL cluster of the postgresql backend
    kafka_topic: str
    kafka_dlq_topic: str
    kafka_partitions: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Config":
        env = os.environ if environ is None else environ
        kafka_port = _port(env, "VOTES_KAFKA_PORT", 9092)
        partitions = env.get("VOTES_KAFKA_PARTITIONS", "6").strip()
        if not partitions.isdigit() or int(partitions) < 1:
            raise StackError(f"VOTES_KAFKA_PARTITIONS={partitions!r} is not a positive integer")
        topic = env.get("VOTES_KAFKA_TOPIC", "").strip() or "votes"
        backend = env.get("VOTES_STACK_FERRETDB_BACKEND", "").strip() or "sqlite"
        if backend not in FERRETDB_BACKENDS:
            raise StackError(
                f"VOTES_STACK_FERRETDB_BACKEND={backend!r} is not one of "
                + ", ".join(FERRETDB_BACKENDS)
            )
        return cls(
            root=Path(env.get("VOTES_STACK_DIR") or REPO_ROOT / ".stack").resolve(),
            kafka_port=kafka_port,
            kafka_controller_port=_port(env, "VOTES_KAFKA_CONTROLLER_PORT", kafka_port + 1),
            redis_port=_port(env, "VOTES_REDIS_PORT", 6379),
            mongo_port=_port(env, "VOTES_MONGO_PORT", 27017),
            ferretdb_debug_port=_port(env, "VOTES_FERRETDB_DEBUG_PORT", 8088, allow_zero=True),
            ferretdb_backend=backend,
            postgres_port=_port(env, "VOTES_POSTGRES_PORT", 5433),
            kafka_topic=topic,
            kafka_dlq_topic=env.get("VOTES_KAFKA_DLQ_TOPIC", "").strip() or f"{topic}.dlq",
            kafka_partitions=int(partitions),
        )

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    # ----- the layout under the stack root (README.md, "Where things live")

    def data_dir(self, part: str) -> Path:
        return self.root / "data" / part

    def log_path(self, part: str) -> Path:
        return self.root / "logs" / f"{part}.log"

    @property
    def run_dir(self) -> Path:
        """Pid files and the lock."""
        return self.root / "run"

    def pid_path(self, part: str) -> Path:
        return self.run_dir / f"{part}.pid"

    @property
    def lock_path(self) -> Path:
        return self.run_dir / "stack.lock"

    @property
    def cache_dir(self) -> Path:
        """Go's and Maven's caches: under the stack, never in the home folder."""
        return self.root / "cache"


def _port(env: Mapping[str, str], name: str, default: int, allow_zero: bool = False) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not (0 if allow_zero else 1) <= int(raw) <= 65535:
        raise StackError(f"{name}={raw!r} is not a TCP port number")
    return int(raw)


def show(path: Path) -> str:
    """A path relative to the repo root when it is inside it (shorter progress lines)."""
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
