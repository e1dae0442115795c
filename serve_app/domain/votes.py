"""What a vote is: the models, and the Kafka record it becomes. Its fields' rules are in
serve_app/domain/fields.py.

Pure domain code: no I/O here. The HTTP routes, the gRPC methods and the Kafka consumer all
validate through these types, so a vote means the same thing on every path.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serve_app.domain.fields import Rank, RecordVoteId, Text, VoteId, Year

BATCH_MAX_VOTES = 1000

# Version of the JSON layout of a Kafka record; bumped on an incompatible change.
RECORD_SCHEMA = "votes.v1.VoteRecord/1"

Source = Literal["http", "grpc"]

_NOT_PLAIN = frozenset({float, list, dict})


class Vote(BaseModel):
    """One vote as a client sends it. Unknown fields are rejected, not silently dropped."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [{"name": "Malacates Trebol Shop", "album": "Pan", "year": 2012, "rank": 1}]
        },
    )

    name: Text = Field(description="The band, 1-200 characters after trimming.")
    album: Text = Field(description="The album, 1-200 characters after trimming.")
    year: Year = Field(description="Release year, 1900-2100; a string of digits is accepted.")
    rank: Rank = Field(description="Rank, 1-100; a string of digits is accepted.")
    vote_id: VoteId = Field(
        default=None,
        description="Optional idempotency key: the same vote_id counts once. "
        "Assigned by the server when absent.",
    )


class VoteBatch(BaseModel):
    """Up to 1000 votes, accepted whole or not at all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    votes: list[Vote] = Field(min_length=1, max_length=BATCH_MAX_VOTES)


class VoteRecord(BaseModel):
    """An accepted vote as it travels through Kafka: the vote plus what the server knows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vote_id: RecordVoteId
    name: Text
    album: Text
    year: Year
    rank: Rank
    received_at: datetime
    source: Source


def new_vote_id() -> str:
    return str(uuid.uuid4())


def accept(vote: Vote, source: Source, now: datetime | None = None) -> VoteRecord:
    """Turn a validated vote into the record we produce: assign vote_id and received_at."""
    # model_construct skips re-validation: every field comes from a validated Vote, a fresh
    # uuid4, an aware datetime or the Source literal. Validating again cost ~40% of the ingress
    # CPU per vote in a batch (bench.tools.hotpath); tests check the result validates.
    return VoteRecord.model_construct(
        vote_id=vote.vote_id or new_vote_id(),
        name=vote.name,
        album=vote.album,
        year=vote.year,
        rank=vote.rank,
        received_at=now or datetime.now(UTC),
        source=source,
    )


# A Kafka record's headers, (name, value) pairs. Typed as a producer takes them (a list's item type
# must match exactly): ours are bytes, a header may also be text or have no value.
KafkaHeaders = list[tuple[str, str | bytes | None]]


@dataclass(frozen=True)
class KafkaMessage:
    """The bytes of one Kafka record, independent of any client library."""

    key: bytes
    value: bytes
    headers: KafkaHeaders


_HEADERS: dict[str, KafkaHeaders] = {
    source: [
        ("content-type", b"application/json"),
        ("schema", RECORD_SCHEMA.encode()),
        ("source", source.encode()),
    ]
    for source in ("http", "grpc")
}


def encode_record(record: VoteRecord) -> KafkaMessage:
    """Key by vote_id: a client's retry lands on the same partition as its first attempt."""
    payload = {
        "vote_id": record.vote_id,
        "name": record.name,
        "album": record.album,
        "year": record.year,
        "rank": record.rank,
        "received_at": format_timestamp(record.received_at),
        "source": record.source,
    }
    return KafkaMessage(
        key=record.vote_id.encode(),
        # The bytes of json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        # for every valid record (tests/unit/domain/test_votes.py), ~4x faster.
        value=orjson.dumps(payload),
        headers=_HEADERS[record.source],
    )


# A reason travels as a Kafka header of the dead-lettered record: bounded, so that a record with
# thousands of bad fields cannot make the DLQ record too large to produce (which would stall the
# partition), and valid UTF-8 whatever the record contained.
RECORD_ERROR_MAX_CHARS = 1000


class RecordError(ValueError):
    """A Kafka record that is not a valid vote record; `reason` says why (for the DLQ)."""

    def __init__(self, reason: str) -> None:
        reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
        if len(reason) > RECORD_ERROR_MAX_CHARS:
            reason = reason[: RECORD_ERROR_MAX_CHARS - 3] + "..."
        super().__init__(reason)
        self.reason = reason


def decode_record(value: bytes | None) -> VoteRecord:
    """Parse and re-validate a record read from Kafka. Raises RecordError, never anything else."""
    if value is None:
        raise RecordError("empty record (no value)")
    payload = parse_json(value)
    if not isinstance(payload, dict):
        raise RecordError(f"not a JSON object but {type(payload).__name__}")
    try:
        return VoteRecord.model_validate(payload)
    except ValidationError as exc:
        reason = describe_errors(exc, max_chars=RECORD_ERROR_MAX_CHARS)
        raise RecordError(f"invalid vote record: {reason}") from None


def parse_json(value: bytes) -> Any:
    """What json.loads(value) returns, ~4x faster on the records we write; RecordError if not JSON.

    orjson first. Where it accepts a document it returns what json.loads does, except that it
    makes integers past 64 bits floats: so only an object of plain values (no float, no list or
    object, where such a float could hide) is taken from it. Anything else goes to json.loads, which
    also accepts a little more than orjson (UTF-16, NaN, lone surrogate escapes) and words its
    errors as the DLQ reasons always were (tests/unit/domain/test_votes.py checks all this).
    """
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        pass
    else:
        if type(parsed) is dict and _NOT_PLAIN.isdisjoint(map(type, parsed.values())):
            return parsed
    try:
        return json.loads(value)
    # ValueError covers JSONDecodeError, UnicodeDecodeError and also an integer literal longer
    # than Python's int-digits limit (4300), which json.loads raises as a bare ValueError.
    except (ValueError, RecursionError) as exc:
        raise RecordError(f"not JSON: {exc}") from None


@functools.lru_cache(maxsize=64)
def format_timestamp(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a Z, the one timestamp format of the API.

    Cached: the votes of a batch share their received_at, and formatting was ~6% of the ingress
    replica's CPU on batches (py-spy, bench/results/latest.md).
    """
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def describe_errors(exc: ValidationError, prefix: str = "", max_chars: int | None = None) -> str:
    """One line naming every invalid field, for gRPC details and DLQ reasons.

    With `max_chars`, stops before the line would exceed it and says how many errors it left
    out: gRPC details travel in a trailer, which clients refuse beyond a few KiB.
    """
    errors = exc.errors(include_url=False, include_input=False)
    parts: list[str] = []
    used = 0
    for index, error in enumerate(errors):
        where = prefix + location(error["loc"])
        part = f"{where}: {error['msg']}" if where else error["msg"]
        if max_chars is not None and parts and used + len(part) + 40 > max_chars:
            parts.append(f"... and {len(errors) - index} more errors")
            break
        parts.append(part)
        used += len(part) + 2
    line = "; ".join(parts)
    if max_chars is not None and len(line) > max_chars:  # one huge location (a client's key)
        line = line[: max_chars - 3] + "..."
    return line


def location(loc: tuple[int | str, ...]) -> str:
    """('votes', 3, 'year') -> 'votes[3].year'."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
