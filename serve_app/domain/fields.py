"""The rules of a vote's fields: band and album names, year, rank and vote_id.

Pure domain code: validators and the annotated types `Vote` and `VoteRecord`
(serve_app/domain/votes.py) are built from, with the OpenAPI schemas that describe them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

TEXT_MAX_CHARS = 200
YEAR_MIN, YEAR_MAX = 1900, 2100
RANK_MIN, RANK_MAX = 1, 100
VOTE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"

_DIGITS = re.compile(r"[0-9]{1,9}")
_VOTE_ID = re.compile(VOTE_ID_PATTERN)
# Unicode categories Cc (C0/C1 control characters: NUL, newline, ESC, ...) and Cs (lone
# surrogates, which JSON can carry as "\ud800" but UTF-8 cannot encode). Both are closed sets by
# Unicode's stability policy, so one character class is the whole check
# (tests/unit/domain/test_votes.py compares it with unicodedata for every code point); a
# per-character unicodedata loop was ~1/3 of the pool's record validation. Format characters
# (Cf: RTL marks, ZWJ in emoji) are kept.
_FORBIDDEN_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _text(value: Any) -> str:
    """A band or album name: a string, trimmed, 1-200 characters, no control characters."""
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be a string")
    text = value.strip()
    if not text:
        raise PydanticCustomError("string_empty", "must not be empty or only whitespace")
    if len(text) > TEXT_MAX_CHARS:
        raise PydanticCustomError(
            "string_too_long",
            "must be at most {max} characters after trimming (got {actual})",
            {"max": TEXT_MAX_CHARS, "actual": len(text)},
        )
    forbidden = _FORBIDDEN_CHARACTER.search(text)
    if forbidden is not None:
        raise PydanticCustomError(
            "control_character",
            # pydantic fills in {name} placeholders only (no format specs like {x:04X}).
            "must not contain control characters (found {code})",
            {"code": f"U+{ord(forbidden.group()):04X}"},
        )
    return text


def _whole_number(value: Any) -> int:
    """An integer, or a string of digits as the original traffic generators send it."""
    # bool is an int subclass in Python; JSON true must not count as 1.
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "must be an integer or a string of digits")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value.strip())
    raise PydanticCustomError("int_type", "must be an integer or a string of digits")


def _vote_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be a string")
    if not _VOTE_ID.fullmatch(value):
        raise PydanticCustomError(
            "vote_id_format",
            "must be 1-64 characters of letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit",
        )
    return value


def _number_schema(low: int, high: int) -> WithJsonSchema:
    """The OpenAPI schema of a year/rank as clients may send it: an integer or digits."""
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": low, "maximum": high},
                {"type": "string", "pattern": r"^\s*[0-9]{1,9}\s*$"},
            ]
        }
    )


# The JSON schemas (OpenAPI) say what the validators accept; "after trimming" cannot be said in
# JSON schema, so the text has only its lower bound there.
Text = Annotated[str, BeforeValidator(_text), WithJsonSchema({"type": "string", "minLength": 1})]
Year = Annotated[
    int,
    Field(ge=YEAR_MIN, le=YEAR_MAX),
    BeforeValidator(_whole_number),
    _number_schema(YEAR_MIN, YEAR_MAX),
]
Rank = Annotated[
    int,
    Field(ge=RANK_MIN, le=RANK_MAX),
    BeforeValidator(_whole_number),
    _number_schema(RANK_MIN, RANK_MAX),
]
VoteId = Annotated[
    str | None,
    BeforeValidator(_vote_id),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": VOTE_ID_PATTERN}, {"type": "null"}]}),
]
# A record's vote_id: always there (the server assigns one when the client did not).
RecordVoteId = Annotated[str, BeforeValidator(_vote_id)]
