"""The vote log's write concern: durable by default, chosen by a setting, visible on the client.

An insert acknowledged before the journal is synced can vanish in an unclean stop (an OOM kill),
after its offset was committed: stored != counted for good.
docs/decisions/0022-vote-log-write-concern.md
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import BulkWriteError

from serve_app import settings as settings_module
from serve_app.domain.counting import Delivered
from serve_app.domain.votes import VoteRecord
from serve_app.pool.clients import new_mongo
from serve_app.settings import SettingsError, load_settings
from serve_app.stores.mongo_log import MongoVoteLog


def client_concern(**args: Any) -> dict[str, Any]:
    client = new_mongo(load_settings(args, environ={}))
    try:
        return dict(client.write_concern.document)
    finally:
        client.close()


def test_the_pool_writes_the_vote_log_journaled_and_majority_by_default() -> None:
    assert client_concern() == {"w": "majority", "j": True}


@pytest.mark.parametrize(
    ("choice", "document"),
    [
        ("majority", {"w": "majority", "j": True}),
        ("journaled", {"w": 1, "j": True}),
        ("acknowledged", {"w": 1}),
    ],
)
def test_each_write_concern_setting_reaches_the_client(
    choice: str, document: dict[str, Any]
) -> None:
    assert settings_module.MONGO_WRITE_CONCERNS[choice] == document
    assert client_concern(mongo_write_concern=choice) == document


def test_the_environment_overrides_the_write_concern() -> None:
    settings = load_settings(
        {"mongo_write_concern": "majority"}, environ={"VOTES_MONGO_WRITE_CONCERN": "journaled"}
    )
    assert settings.mongo_write_concern == "journaled"


def test_a_bad_write_concern_names_the_setting_and_the_choices() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({}, environ={"VOTES_MONGO_WRITE_CONCERN": "w0"})
    message = str(info.value)
    assert (
        "setting 'mongo_write_concern' (from environment variable VOTES_MONGO_WRITE_CONCERN)"
        in message
    )
    for choice in ("majority", "journaled", "acknowledged"):
        assert choice in message


class ConcernFailing:
    """A collection whose insert lands on the primary but misses its write concern."""

    def insert_many(self, documents: list[dict[str, Any]], ordered: bool) -> None:
        raise BulkWriteError(
            {
                "writeErrors": [],
                "writeConcernErrors": [{"code": 64, "errmsg": "waiting for replication timed out"}],
                "nInserted": len(documents),
            }
        )

    def find_one(self, *_args: Any) -> None:
        raise AssertionError(
            "a batch that missed its write concern is not looked up: it is retried"
        )


def test_a_write_concern_error_is_raised_so_the_batch_is_retried() -> None:
    from datetime import UTC, datetime

    record = VoteRecord(
        vote_id="v1",
        name="Band",
        album="A",
        year=2000,
        rank=1,
        received_at=datetime.now(UTC),
        source="http",
    )
    with pytest.raises(BulkWriteError):
        MongoVoteLog(ConcernFailing()).store([Delivered(record, "votes", 0, 7)])  # type: ignore[arg-type]  # a fake collection
