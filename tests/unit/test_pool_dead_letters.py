"""What a poison record looks like on the dead-letter topic."""

from __future__ import annotations

from serve_app.pool.dead_letters import DLQ_MAX_VALUE_BYTES, dead_letter
from serve_app.pool.ports import Poison
from tests.unit.test_pool_processor import FakeRecord


def test_a_dead_letter_says_why_and_where_from_after_the_original_headers() -> None:
    record = FakeRecord(b"not json", 4, 17, b"k")
    value, headers = dead_letter(Poison(record, "not JSON"))
    assert value == b"not json"
    assert headers == [("dlq.reason", b"not JSON"), ("dlq.topic", b"votes"),
                       ("dlq.partition", b"4"), ("dlq.offset", b"17"),
                       ("dlq.original_bytes", b"8")]


def test_a_value_over_the_limit_keeps_a_prefix_and_says_so() -> None:
    value, headers = dead_letter(Poison(FakeRecord(b"x" * 900_000, 0, 0), "too big"))
    assert len(value) == DLQ_MAX_VALUE_BYTES
    assert ("dlq.original_bytes", b"900000") in headers and headers[-1] == ("dlq.truncated", b"true")
