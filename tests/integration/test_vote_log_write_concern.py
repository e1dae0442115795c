"""The pool's vote log client against the real FerretDB: its inserts carry the durable write
concern, and FerretDB accepts every choice (docs/decisions/0022-vote-log-write-concern.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import monitoring

from serve_app.domain.counting import Delivered
from serve_app.domain.votes import VoteRecord
from serve_app.pool.clients import IndexedVoteLog, new_mongo
from serve_app.settings import MONGO_WRITE_CONCERNS, load_settings
from serve_app.stores.mongo_log import COLLECTION

pytestmark = pytest.mark.integration


class InsertCommands(monitoring.CommandListener):
    """The `insert` and `createIndexes` commands clients send while it is listening."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.listening = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.listening and event.command_name in ("insert", "createIndexes"):
            self.sent.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


# Registered once for the process: pymongo applies it to the clients created after this.
COMMANDS = InsertCommands()
monitoring.register(COMMANDS)


@pytest.fixture
def commands() -> Iterator[InsertCommands]:
    COMMANDS.sent.clear()
    COMMANDS.listening = True
    yield COMMANDS
    COMMANDS.listening = False


def delivered(vote_id: str, offset: int) -> Delivered:
    record = VoteRecord(
        vote_id=vote_id,
        name="Write concern",
        album="A",
        year=2000,
        rank=1,
        received_at=datetime.now(UTC),
        source="http",
    )
    return Delivered(record, "votes-wc", 0, offset)


@pytest.mark.parametrize("choice", [None, *MONGO_WRITE_CONCERNS])
def test_the_vote_log_insert_carries_the_write_concern_and_ferretdb_stores_it(
    choice: str | None, commands: InsertCommands, stack: Any
) -> None:
    database = f"votes_wc_{uuid.uuid4().hex[:8]}"
    args = {"mongo_database": database} | ({"mongo_write_concern": choice} if choice else {})
    settings = load_settings(args, environ={})
    expected = MONGO_WRITE_CONCERNS[choice or "majority"]
    client = new_mongo(settings)
    try:
        log = IndexedVoteLog(client[database][COLLECTION])
        stored = log.store([delivered("wc-1", 5), delivered("wc-2", 6)])
        again = log.store([delivered("wc-1", 9)])  # a replay: the first copy stays
        assert stored == {"wc-1": (0, 5), "wc-2": (0, 6)}
        assert again == {"wc-1": (0, 5)}
        assert client[database][COLLECTION].count_documents({}) == 2
        inserts = [c for c in commands.sent if "insert" in c]
        assert len(inserts) == 2
        if choice in (None, "majority"):  # the default is majority, journaled
            assert expected == {"w": "majority", "j": True}
        for command in inserts + [c for c in commands.sent if "createIndexes" in c]:
            assert dict(command.get("writeConcern", {"w": 1})) == expected, command
    finally:
        client.drop_database(database)
