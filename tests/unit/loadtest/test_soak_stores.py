"""The soak's reconciliation: exact only when every store rose by the accepted votes and the DLQ
by the poison records. No services."""

from __future__ import annotations

import pytest

from loadtest import soak_stores


def counts(kafka: int, dlq: int, redis: int, mongo: int, results: int | None) -> soak_stores.Counts:
    return soak_stores.Counts(
        kafka_records=kafka,
        dlq_records=dlq,
        redis_total=redis,
        mongo_documents=mongo,
        results_total=results,
    )


def test_reconciliation_is_exact_when_every_store_rose_by_the_accepted_votes() -> None:
    before = counts(10, 0, 10, 10, 10)
    after = counts(10 + 500 + 3, 3, 510, 510, 510)
    rec = soak_stores.reconcile(500, before, after, poison_sent=3)
    assert (rec.kafka, rec.redis, rec.mongo, rec.results, rec.dlq) == (500, 500, 500, 500, 3)
    assert rec.exact


@pytest.mark.parametrize(
    "after",
    [
        counts(503, 3, 499, 500, 500),  # one vote not counted in Redis
        counts(504, 3, 500, 500, 500),  # a duplicate in Kafka
        counts(503, 2, 500, 500, 500),  # a poison record not dead-lettered
        counts(503, 3, 500, 500, 499),  # /results behind
    ],
)
def test_reconciliation_fails_on_any_difference(after: soak_stores.Counts) -> None:
    assert not soak_stores.reconcile(500, counts(0, 0, 0, 0, 0), after, poison_sent=3).exact
