"""The reconciliation of the real node's load (deployments/k8s-lab/node_counts.py): pure parts.

The arithmetic (every store's increase equals the votes accepted, none in doubt) and the parsing
of what `node_counts.py count` prints inside the namespace.
"""

from __future__ import annotations

import lab
import node_counts
import pytest
from node_counts import Counts


def test_increases_are_after_minus_before() -> None:
    before = Counts(kafka=1, redis=1, mongo=1, results=1, kafka_records=1)
    after = Counts(kafka=20_001, redis=20_002, mongo=20_001, results=20_002, kafka_records=20_005)
    assert after.minus(before) == Counts(20_000, 20_001, 20_000, 20_001, 20_004)


def test_exact_when_every_store_rose_by_the_accepted_votes() -> None:
    # Records beyond the distinct vote_ids are retries that reached Kafka twice: not a mismatch.
    assert node_counts.mismatches(500, Counts(500, 500, 500, 500, 503), in_doubt=0) == []


def test_each_store_off_by_any_amount_is_named_with_its_difference() -> None:
    problems = node_counts.mismatches(500, Counts(500, 499, 501, 500, 500), in_doubt=0)
    assert problems == [
        "redis increased by 499, accepted 500 (difference -1)",
        "mongo increased by 501, accepted 500 (difference +1)",
    ]


def test_votes_in_doubt_make_it_not_exact_even_when_the_counts_agree() -> None:
    problems = node_counts.mismatches(500, Counts(500, 500, 500, 500, 500), in_doubt=2)
    assert problems == ["2 votes in doubt (given up or cut off): not exact by design"]


def test_the_counts_are_the_last_printed_line() -> None:
    stdout = 'a warning\n{"kafka": 2, "redis": 2, "mongo": 2, "results": 2, "kafka_records": 3}\n\n'
    assert node_counts.parse_counts(stdout) == Counts(
        kafka=2, redis=2, mongo=2, results=2, kafka_records=3
    )


def test_a_count_missing_from_the_line_is_an_error() -> None:
    with pytest.raises(KeyError, match="kafka_records"):
        node_counts.parse_counts('{"kafka": 2, "redis": 2, "mongo": 2, "results": 2}')


def test_nothing_printed_is_a_lab_error() -> None:
    with pytest.raises(lab.LabError, match="printed nothing"):
        node_counts.parse_counts("\n")
