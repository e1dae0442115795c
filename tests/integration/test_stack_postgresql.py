"""FerretDB on a private PostgreSQL cluster, started and stopped by the local stack's own code.

VOTES_STACK_FERRETDB_BACKEND=postgresql (docs/decisions/0015-ferretdb-backend.md), checked without
touching the running stack: a stack root of its own under the stack's folder (PostgreSQL, run as
its package's user when we are root, must be able to reach it; pytest's tmp folders are private to
root), free ports, and the stack's FerretDB binary (no second build). Bounded by a timeout; the
parts are stopped by their pid files and the folder deleted whatever happens.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from deployments.local.stack import Config, Stack
from deployments.local.stack.postgresql import first_closed_folder, server_user
from deployments.local.stack.processes import alive, read_pid
from devkit.net import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def postgres_stack(stack: Stack) -> Iterator[Stack]:
    """A stack on the postgresql backend with only PostgreSQL and FerretDB, not started."""
    root = stack.root / f"test-postgresql-{uuid.uuid4().hex[:8]}"
    user = server_user()
    if user is not None and (closed := first_closed_folder(stack.root, user)) is not None:
        # e.g. a clone under `mktemp -d` (mode 0700): the stack refuses it with this reason too.
        pytest.skip(
            f"PostgreSQL's user {user!r} cannot enter {closed}: the checkout is in a private folder"
        )
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "ferretdb").symlink_to(stack.root / "bin" / "ferretdb")
    shutil.copy(stack.root / "bin" / "ferretdb.build", root / "bin" / "ferretdb.build")
    config = Config.from_env(
        {
            "VOTES_STACK_DIR": str(root),
            "VOTES_STACK_FERRETDB_BACKEND": "postgresql",
            "VOTES_MONGO_PORT": str(free_port()),
            "VOTES_FERRETDB_DEBUG_PORT": "0",
            "VOTES_POSTGRES_PORT": str(free_port()),
        }
    )
    private = Stack(config, out=io.StringIO())
    try:
        yield private
    finally:
        for part in ("ferretdb", "postgresql"):
            with contextlib.suppress(Exception):
                private.stop(part)
        shutil.rmtree(root, ignore_errors=True)


def test_ferretdb_on_postgresql_stores_votes_and_survives_a_restart(postgres_stack: Stack) -> None:
    config = postgres_stack.config
    postgres_stack.start("postgresql")
    postgres_stack.start("ferretdb")
    assert [
        (s.part, s.healthy) for s in postgres_stack.status() if s.part in ("postgresql", "ferretdb")
    ] == [("postgresql", True), ("ferretdb", True)]

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        "127.0.0.1", config.mongo_port, directConnection=True, serverSelectionTimeoutMS=10_000
    )
    votes = client["votes_pg_test"]["votes"]
    votes.insert_many([{"_id": f"v{i}", "name": "Ñandú", "year": 1990 + i} for i in range(20)])
    with pytest.raises(pymongo.errors.BulkWriteError):  # _id is unique, as the vote log needs
        votes.insert_many([{"_id": "v3", "name": "again"}], ordered=False)
    assert votes.find_one({"_id": "v3"}) == {"_id": "v3", "name": "Ñandú", "year": 1993}

    postgres_pid = read_pid(config.pid_path("postgresql"))
    postgres_stack.stop("ferretdb")
    postgres_stack.stop("postgresql")
    assert postgres_pid is not None and not alive(postgres_pid)

    postgres_stack.start("postgresql")  # the cluster exists now: no initdb, the data is kept
    postgres_stack.start("ferretdb")
    assert votes.count_documents({}) == 20
    client.close()
