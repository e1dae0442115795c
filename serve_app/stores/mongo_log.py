"""MongoDB vote log: one document per vote, keyed by vote_id, written idempotently.

Document: {_id: vote_id, name, album, year, rank, received_at, persisted_at, source,
           kafka: {topic, partition, offset}}. `_id` makes a second insert of the same vote a
duplicate-key error, which we treat as "already stored". Only features that both MongoDB and
FerretDB support are used: unordered insert_many, find with projection, sort, limit, indexes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from serve_app.domain.counting import Delivered

COLLECTION = "votes"
DUPLICATE_KEY = 11000
RECENT_INDEX = "received_at_desc"


def vote_document(item: Delivered, persisted_at: datetime) -> dict[str, Any]:
    record = item.record
    return {
        "_id": record.vote_id,
        "name": record.name,
        "album": record.album,
        "year": record.year,
        "rank": record.rank,
        "received_at": record.received_at,
        "persisted_at": persisted_at,
        "source": record.source,
        "kafka": {"topic": item.topic, "partition": item.partition, "offset": item.offset},
    }


def ensure_indexes(collection: Collection[Any]) -> None:
    collection.create_index([("received_at", DESCENDING)], name=RECENT_INDEX)


class MongoVoteLog:
    """The consumer's side: store a batch once, and say which record each vote_id holds."""

    def __init__(self, collection: Collection[Any]) -> None:
        self._collection = collection

    def store(
        self, batch: Sequence[Delivered], now: datetime | None = None
    ) -> dict[str, tuple[int, int]]:
        """Insert the batch (duplicates ignored); return vote_id -> stored (partition, offset).

        Raises pymongo errors other than duplicate keys, so the caller retries the batch.
        """
        if not batch:
            return {}
        persisted_at = now or datetime.now(UTC)
        documents: dict[str, dict[str, Any]] = {}
        for item in batch:
            # Within a batch the first copy of a vote_id is the one inserted.
            documents.setdefault(item.record.vote_id, vote_document(item, persisted_at))
        inserted: dict[str, tuple[int, int]] = {}
        duplicates: list[str] = []
        try:
            self._collection.insert_many(list(documents.values()), ordered=False)
            inserted = {vid: _position(doc) for vid, doc in documents.items()}
        except BulkWriteError as exc:
            if exc.details.get("writeConcernErrors"):
                raise  # inserted, but not yet durable as asked: retried, never counted on it
            failed = {}
            for error in exc.details.get("writeErrors", []):
                if error.get("code") != DUPLICATE_KEY:
                    raise
                failed[error["index"]] = True
            for index, (vid, doc) in enumerate(documents.items()):
                if index in failed:
                    duplicates.append(vid)
                else:
                    inserted[vid] = _position(doc)
        if duplicates:
            inserted.update(self.positions(duplicates))
        return inserted

    def positions(self, vote_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """vote_id -> (partition, offset) of the record stored for it.

        One `{_id: id}` query per vote, not `$in` (FerretDB scans the whole log for `$in`; only
        replays and client retries come here): docs/decisions/0004-ferretdb-id-index-patch.md.
        """
        found: dict[str, tuple[int, int]] = {}
        for vote_id in dict.fromkeys(vote_ids):
            document = self._collection.find_one(
                {"_id": vote_id}, {"kafka.partition": 1, "kafka.offset": 1}
            )
            if document is not None:
                found[vote_id] = _position(document)
        return found


def _position(document: Mapping[str, Any]) -> tuple[int, int]:
    return (int(document["kafka"]["partition"]), int(document["kafka"]["offset"]))
