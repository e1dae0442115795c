"""The vote model: every field, every limit, the original string format, the Kafka record."""

from __future__ import annotations

import json
import sys
import unicodedata
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from serve_app.domain import fields
from serve_app.domain.votes import (
    RECORD_SCHEMA,
    RecordError,
    Vote,
    VoteBatch,
    VoteRecord,
    accept,
    decode_record,
    describe_errors,
    encode_record,
    format_timestamp,
    parse_json,
)

GOOD = {"name": "Bohemia Suburbana", "album": "Mil palabras", "year": 1998, "rank": 3}


def errors_of(payload: dict) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        Vote.model_validate(payload)
    return {".".join(map(str, e["loc"])): e["type"] for e in info.value.errors()}


def test_a_good_vote_validates() -> None:
    vote = Vote.model_validate(GOOD)
    assert (vote.name, vote.album, vote.year, vote.rank, vote.vote_id) == (
        "Bohemia Suburbana",
        "Mil palabras",
        1998,
        3,
        None,
    )


def test_original_string_format_is_normalised() -> None:
    vote = Vote.model_validate(
        {"name": " Alux Nahual ", "album": "Alux", "year": "1983", "rank": " 7 "}
    )
    assert vote.name == "Alux Nahual"
    assert vote.year == 1983 and isinstance(vote.year, int)
    assert vote.rank == 7


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("name", "", "string_empty"),
        ("name", "   ", "string_empty"),
        ("name", "x" * 201, "string_too_long"),
        ("album", "a\x00b", "control_character"),
        ("album", "line\nbreak", "control_character"),
        ("name", "\ud800", "control_character"),
        ("name", 12, "string_type"),
        ("name", {"$gt": ""}, "string_type"),
        ("name", None, "string_type"),
        ("year", 1899, "greater_than_equal"),
        ("year", 2101, "less_than_equal"),
        ("year", "19x8", "int_type"),
        ("year", 1998.0, "int_type"),
        ("year", True, "int_type"),
        ("year", "-5", "int_type"),
        ("rank", 0, "greater_than_equal"),
        ("rank", 101, "less_than_equal"),
        ("rank", "", "int_type"),
        ("vote_id", "", "vote_id_format"),
        ("vote_id", "has space", "vote_id_format"),
        ("vote_id", "x" * 65, "vote_id_format"),
        ("vote_id", 5, "string_type"),
    ],
)
def test_each_invalid_field_is_named(field: str, value: object, error: str) -> None:
    assert errors_of(GOOD | {field: value}) == {field: error}


def test_limits_are_inclusive() -> None:
    for year, rank, name in ((1900, 1, "x"), (2100, 100, "y" * 200)):
        Vote.model_validate(GOOD | {"year": year, "rank": rank, "name": name})


def test_missing_and_unknown_fields_are_errors() -> None:
    assert errors_of({"name": "a", "album": "b", "year": 2000, "extra": 1}) == {
        "rank": "missing",
        "extra": "extra_forbidden",
    }


def test_format_characters_and_emoji_are_kept_verbatim() -> None:
    name = "\u202eMarimba\u202c \U0001f3b8 Cafe\u0301"
    assert Vote.model_validate(GOOD | {"name": name}).name == name


def test_batch_is_all_or_nothing_and_names_every_bad_index() -> None:
    votes = [GOOD, GOOD | {"year": 1}, GOOD, GOOD | {"rank": 0, "name": ""}]
    with pytest.raises(ValidationError) as info:
        VoteBatch.model_validate({"votes": votes})
    assert describe_errors(info.value) == (
        "votes[1].year: Input should be greater than or equal to 1900; "
        "votes[3].name: must not be empty or only whitespace; "
        "votes[3].rank: Input should be greater than or equal to 1"
    )


@pytest.mark.parametrize("count", [0, 1001])
def test_batch_size_limits(count: int) -> None:
    with pytest.raises(ValidationError) as info:
        VoteBatch.model_validate({"votes": [GOOD] * count})
    assert info.value.errors()[0]["loc"] == ("votes",)


def test_batch_of_1000_is_fine() -> None:
    assert len(VoteBatch.model_validate({"votes": [GOOD] * 1000}).votes) == 1000


def test_accept_assigns_id_and_time_but_keeps_a_client_id() -> None:
    now = datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=UTC)
    assigned = accept(Vote.model_validate(GOOD), "http", now)
    assert len(assigned.vote_id) == 36 and assigned.received_at == now and assigned.source == "http"
    kept = accept(Vote.model_validate(GOOD | {"vote_id": "client-1"}), "grpc", now)
    assert kept.vote_id == "client-1" and kept.source == "grpc"


@pytest.mark.parametrize(
    "extra", [{}, {"vote_id": "client-1"}, {"name": "  Ñandú  ", "year": "1999"}]
)
def test_accepted_record_is_what_validation_would_build(extra: dict[str, object]) -> None:
    # accept() skips re-validation (model_construct); the record must still be a valid one.
    now = datetime(2026, 11, 27, 12, 0, 0, 123000, tzinfo=UTC)  # the record keeps milliseconds
    record = accept(Vote.model_validate(GOOD | extra), "grpc", now)
    assert VoteRecord.model_validate(record.model_dump()) == record
    assert decode_record(encode_record(record).value) == record


def test_kafka_record_shape_and_round_trip() -> None:
    now = datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=UTC)
    record = accept(Vote.model_validate(GOOD | {"vote_id": "v-1", "name": "Ñandú"}), "http", now)
    message = encode_record(record)
    assert message.key == b"v-1"
    assert dict(message.headers) == {
        "content-type": b"application/json",
        "schema": RECORD_SCHEMA.encode(),
        "source": b"http",
    }
    assert json.loads(message.value) == {
        "vote_id": "v-1",
        "name": "Ñandú",
        "album": "Mil palabras",
        "year": 1998,
        "rank": 3,
        "received_at": "2026-11-27T12:00:00.123Z",
        "source": "http",
    }
    decoded = decode_record(message.value)
    assert decoded.model_dump() == record.model_dump() | {
        "received_at": datetime(2026, 11, 27, 12, 0, 0, 123000, tzinfo=UTC)
    }


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty record"),
        (b"\xff\xfe", "not JSON"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"vote_id": "a"}', "invalid vote record: name: Field required"),
        (
            (
                b'{"vote_id":"a","name":"n","album":"a","year":1800,"rank":1,'
                b'"received_at":"2026-01-01T00:00:00Z","source":"http"}'
            ),
            "year: Input should be greater",
        ),
        (
            (
                b'{"vote_id":"a","name":"n","album":"a","year":1999,"rank":1,'
                b'"received_at":"2026-01-01T00:00:00Z","source":"carrier-pigeon"}'
            ),
            "source: Input should be",
        ),
    ],
)
def test_decode_rejects_poison_with_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(RecordError) as info:
        decode_record(value)
    assert reason in info.value.reason


# ---- the fast paths give what the standard library gave (docs/decisions/0014) ----------------

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_forbidden_character_class_is_exactly_unicode_categories_cc_and_cs() -> None:
    pattern = fields._FORBIDDEN_CHARACTER
    differ = [
        code
        for code in range(sys.maxunicode + 1)
        if (unicodedata.category(chr(code)) in ("Cc", "Cs")) != bool(pattern.match(chr(code)))
    ]
    assert differ == []


def test_the_first_control_character_is_the_one_named() -> None:
    with pytest.raises(ValidationError) as info:
        Vote.model_validate(GOOD | {"name": "a\x85b\x00c"})
    assert describe_errors(info.value) == "name: must not contain control characters (found U+0085)"


json_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@PROPERTY
@given(
    value=st.one_of(
        st.binary(max_size=64),
        json_documents.map(lambda v: json.dumps(v).encode()),
        json_documents.map(
            lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")
        ),
    )
)
@example(value=b'{"a": 1, "a": 2}')  # a repeated key: the last one wins in both
@example(value=b'"\\ud800"')  # a lone surrogate: refused by orjson, kept by json (then Cs)
@example(value=b"\xef\xbb\xbf{}")  # a UTF-8 byte order mark
@example(value=b"[NaN, Infinity]")
@example(value=b"1" + b"0" * 30)  # past 64 bits: a float in orjson
@example(value=b"[-18446744073709551616, 18446744073709551615, -9223372036854775808, -0, 1E2]")
@example(value=b'{"year": 100000000000000000000000, "rank": [1e400, 1], "x": {"y": 1e30}}')
@example(value=b'"\xed\xa0\x80"')  # a surrogate encoded as UTF-8: not UTF-8
@example(value=b"[" * 2000 + b"]" * 2000)
@example(value='{"a": 1}'.encode("utf-16"))
def test_parse_json_returns_what_json_loads_returns_or_its_reason(value: bytes) -> None:
    try:
        expected = json.loads(value)
    except (ValueError, RecursionError) as exc:
        with pytest.raises(RecordError) as info:
            parse_json(value)
        assert info.value.reason == f"not JSON: {exc}"
        return
    parsed = parse_json(value)
    assert parsed == expected and type(parsed) is type(expected)


record_texts = st.text(
    alphabet=st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=200
).filter(lambda t: t.strip() == t)


@PROPERTY
@given(
    name=record_texts,
    album=record_texts,
    year=st.integers(1900, 2100),
    rank=st.integers(1, 100),
    vote_id=st.from_regex(fields.VOTE_ID_PATTERN, fullmatch=True),
    source=st.sampled_from(["http", "grpc"]),
    moment=st.datetimes(timezones=st.just(UTC)),
)
@example(
    name='Ñandú \u2028 "quoted" back\\slash / 🎸',
    album="x",
    year=1900,
    rank=100,
    vote_id="v-1",
    source="http",
    moment=datetime(2026, 1, 1, tzinfo=UTC),
)
def test_encode_record_writes_the_bytes_json_dumps_wrote(
    name: str, album: str, year: int, rank: int, vote_id: str, source: str, moment: datetime
) -> None:
    record = VoteRecord(
        vote_id=vote_id,
        name=name,
        album=album,
        year=year,
        rank=rank,
        received_at=moment,
        source=source,
    )
    payload = {
        "vote_id": vote_id,
        "name": name,
        "album": album,
        "year": year,
        "rank": rank,
        "received_at": format_timestamp(moment),
        "source": source,
    }
    assert (
        encode_record(record).value
        == json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    )
