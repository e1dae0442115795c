"""The write side of an ingress replica, shared by its HTTP routes and its gRPC methods.

`accept_all()` turns validated votes into records; `WriteSide` checks the bearer token and sends
records to Kafka through the `VoteProducer`, answering only once Kafka has acknowledged them.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Sequence
from typing import Protocol

from pydantic import SecretStr

from serve_app.domain.votes import Source, Vote, VoteRecord, accept
from serve_app.ingress.admission import YIELD_EVERY_RECORDS
from serve_app.metrics import IngestMetrics


class RecordSender(Protocol):
    """What the write side needs of a producer (`VoteProducer`, or a fake in the tests)."""

    async def send(self, records: Sequence[VoteRecord]) -> None: ...


async def accept_all(votes: Sequence[Vote], source: Source) -> list[VoteRecord]:
    """accept() every vote of a batch, handing the event loop back every YIELD_EVERY_RECORDS
    (docs/decisions/0007-write-budget.md): ~15 ms per 1000 votes, more on a busy machine."""
    records: list[VoteRecord] = []
    for start in range(0, len(votes), YIELD_EVERY_RECORDS):
        if start:
            await asyncio.sleep(0)
        records.extend(accept(vote, source) for vote in votes[start : start + YIELD_EVERY_RECORDS])
    return records


def token_ok(expected: SecretStr | None, presented: str | None) -> bool:
    """Whether an Authorization value carries the bearer token; no token set: writes are open."""
    if expected is None:
        return True
    scheme, _, token = (presented or "").partition(" ")
    # compare_digest: the time taken does not tell how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), expected.get_secret_value().encode()
    )


class WriteSide:
    """The token check and the producers of one replica, with the metrics of what they accept.

    A single record goes through `producer` (idempotent: one record is all or nothing); more
    records through `batches` (`TransactionalBatches`: one Kafka transaction each) when given.
    """

    def __init__(
        self,
        producer: RecordSender,
        metrics: IngestMetrics,
        write_token: SecretStr | None,
        retry_after_s: int,
        batches: RecordSender | None = None,
    ) -> None:
        self.metrics = metrics
        self.retry_after_s = retry_after_s  # what a client refused for overload is told to wait
        self._producer = producer
        self._batches = batches or producer
        self._write_token = write_token

    def token_ok(self, presented: str | None) -> bool:
        return token_ok(self._write_token, presented)

    async def send(self, records: Sequence[VoteRecord], path: str) -> None:
        """Produce and await the acks; on success record the votes and the latency.
        Raises KafkaOverloaded / KafkaUnavailable (serve_app/ingress/producer.py), and for a
        batch KafkaOutcomeUnknown (serve_app/ingress/batch_producer.py)."""
        started = time.perf_counter()
        await (self._producer if len(records) == 1 else self._batches).send(records)
        self.metrics.produce_latency.observe(time.perf_counter() - started, tags={"path": path})
        self.metrics.accepted.inc(len(records), tags={"path": path})
