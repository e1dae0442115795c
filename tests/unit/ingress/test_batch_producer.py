"""The transactional batch producer's own logic, with a fake producer: what it does on each
failure of a transaction, and that a batch's answer never claims more than Kafka confirmed
(docs/decisions/0023-transactional-batches.md). Against the real broker:
tests/integration/test_batch_transactions.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from starlette.testclient import TestClient

from serve_app.domain.votes import Vote, VoteRecord, accept
from serve_app.ingress.admission import WriteBudget
from serve_app.ingress.batch_producer import (
    TRANSACTIONAL_ID_PREFIX,
    KafkaOutcomeUnknown,
    TransactionalBatches,
    transactional_config,
)
from serve_app.ingress.http_api import build_http_api
from serve_app.ingress.producer import KafkaOverloaded, KafkaUnavailable
from serve_app.ingress.write_side import WriteSide
from serve_app.pool.clients import consumer_config
from serve_app.settings import Settings
from tests.unit.ingress.test_write_routes import GOOD, Metrics

SETTINGS = Settings(kafka_bootstrap_servers="127.0.0.1:1", kafka_delivery_timeout_s=2.0)
TIMED_OUT = KafkaException(KafkaError(KafkaError._TIMED_OUT, "commit timed out", retriable=True))
ABORTABLE = KafkaException(
    KafkaError(KafkaError._INCONSISTENT, "produce failed", txn_requires_abort=True)
)


class FakeProducer:
    """What TransactionalBatches calls of a transactional producer, scripted per test."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.calls: list[str] = []
        self.failed_deliveries = 0
        self.commit_error: KafkaException | None = None
        self.abort_error: KafkaException | None = None
        self._reports: list[Any] = []

    def init_transactions(self, _timeout: float) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def produce(self, _topic: str, **kwargs: Any) -> None:
        self._reports.append(kwargs["on_delivery"])

    def flush(self, _timeout: float) -> int:
        self.calls.append("flush")
        for index, report in enumerate(self._reports):
            failed = index < self.failed_deliveries
            report(KafkaError(KafkaError._UNKNOWN_PARTITION) if failed else None, None)
        self._reports.clear()
        return 0

    def commit_transaction(self, _timeout: float) -> None:
        self.calls.append("commit")
        if self.commit_error is not None:
            raise self.commit_error

    def abort_transaction(self, _timeout: float) -> None:
        self.calls.append("abort")
        if self.abort_error is not None:
            raise self.abort_error

    def purge(self, **_kwargs: Any) -> None:
        self.calls.append("purge")

    def poll(self, _timeout: float) -> int:
        return 0


class Factory:
    def __init__(self) -> None:
        self.made: list[FakeProducer] = []

    def __call__(self, config: dict[str, Any]) -> FakeProducer:
        self.made.append(FakeProducer(config))
        return self.made[-1]


def records(count: int) -> list[VoteRecord]:
    return [
        accept(Vote(name="Sin Rumbo", album="x", year=2000, rank=1), "http") for _ in range(count)
    ]


def send(batches: TransactionalBatches, batch: list[VoteRecord]) -> None:
    asyncio.run(batches.send(batch))


def test_a_batch_is_flushed_then_committed_in_one_transaction() -> None:
    factory = Factory()
    batches = TransactionalBatches(SETTINGS, 1, factory)  # type: ignore[arg-type]  # a fake producer factory
    send(batches, records(3))
    send(batches, records(2))
    (producer,) = factory.made
    assert producer.calls == ["init", "begin", "flush", "commit", "begin", "flush", "commit"]


def test_a_refused_record_aborts_the_batch_and_nothing_is_committed() -> None:
    factory = Factory()
    batches = TransactionalBatches(SETTINGS, 1, factory)  # type: ignore[arg-type]  # a fake producer factory
    send(batches, records(1))
    factory.made[0].failed_deliveries = 1
    with pytest.raises(KafkaUnavailable, match="nothing of it was committed"):
        send(batches, records(5))
    assert factory.made[0].calls[-3:] == ["begin", "flush", "abort"]


def test_an_abort_kafka_does_not_confirm_replaces_the_producer_with_the_same_id() -> None:
    factory = Factory()
    batches = TransactionalBatches(SETTINGS, 1, factory)  # type: ignore[arg-type]  # a fake producer factory
    send(batches, records(1))
    first = factory.made[0]
    first.failed_deliveries, first.abort_error = 1, TIMED_OUT
    with pytest.raises(KafkaUnavailable):
        send(batches, records(2))
    assert first.calls[-2:] == ["abort", "purge"]
    send(batches, records(2))  # a new producer; its init ends the old one's open transaction
    second = factory.made[1]
    assert second.calls == ["init", "begin", "flush", "commit"]
    assert second.config["transactional.id"] == first.config["transactional.id"]


def test_an_abortable_commit_error_aborts_and_answers_unavailable() -> None:
    factory = Factory()
    batches = TransactionalBatches(SETTINGS, 1, factory)  # type: ignore[arg-type]  # a fake producer factory
    send(batches, records(1))
    factory.made[0].commit_error = ABORTABLE
    with pytest.raises(KafkaUnavailable):
        send(batches, records(2))
    assert factory.made[0].calls[-2:] == ["commit", "abort"]


def test_a_commit_without_an_answer_is_unknown_never_unavailable() -> None:
    # The commit request may have reached the coordinator: a 503 ("nothing of it") could lie.
    factory = Factory()
    batches = TransactionalBatches(SETTINGS, 1, factory)  # type: ignore[arg-type]  # a fake producer factory
    send(batches, records(1))
    factory.made[0].commit_error = TIMED_OUT
    with pytest.raises(KafkaOutcomeUnknown):
        send(batches, records(2))
    assert "abort" not in factory.made[0].calls and factory.made[0].calls[-1] == "purge"
    send(batches, records(1))
    assert len(factory.made) == 2  # replaced: the first one's commit may still be under way


def test_a_batch_that_waited_past_the_delivery_timeout_for_a_producer_is_shed() -> None:
    factory = Factory()
    batches = TransactionalBatches(SETTINGS, 1, factory)  # type: ignore[arg-type]  # a fake producer factory
    with pytest.raises(KafkaOverloaded, match="busy"):
        batches._run(records(1), queued_at=-1e9)
    assert factory.made == []  # nothing produced


def test_every_producer_has_an_id_of_its_own_under_the_acl_prefix() -> None:
    ids = []
    for _replica in range(2):
        batches = TransactionalBatches(SETTINGS, 3, Factory())  # type: ignore[arg-type]  # a fake producer factory
        ids += [batches._idle.get_nowait()._config["transactional.id"] for _ in range(3)]
    assert len(ids) == len(set(ids)) == 6
    assert all(i.startswith(TRANSACTIONAL_ID_PREFIX) for i in ids)


def test_the_transaction_timeout_covers_the_message_timeout() -> None:
    # librdkafka refuses a message.timeout.ms above transaction.timeout.ms.
    config = transactional_config(SETTINGS, "votes-ingest-x-0")
    assert config["transaction.timeout.ms"] >= config["message.timeout.ms"]
    assert config["acks"] == "all" and config["enable.idempotence"] is True


def test_the_pool_reads_committed_transactions_only() -> None:
    assert consumer_config(SETTINGS)["isolation.level"] == "read_committed"


class Sender:
    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[list[VoteRecord]] = []
        self.error = error

    async def send(self, batch: Any) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append(list(batch))


def http_client(producer: Sender, batches: Sender) -> TestClient:
    writes = WriteSide(producer, Metrics(), None, 1, batches)  # type: ignore[arg-type]  # fake senders and metrics
    api = build_http_api(budget=WriteBudget(), write_side=writes, read_side=None, metrics=Metrics())  # type: ignore[arg-type]  # no read side
    return TestClient(api, raise_server_exceptions=False)


def test_a_single_vote_takes_the_idempotent_producer_and_a_batch_a_transaction() -> None:
    producer, batches = Sender(), Sender()
    with http_client(producer, batches) as client:
        assert client.post("/votes", json=GOOD).status_code == 202
        assert client.post("/votes/batch", json={"votes": [GOOD]}).status_code == 202
        assert client.post("/votes/batch", json={"votes": [GOOD, GOOD]}).status_code == 202
    assert [len(b) for b in producer.sent] == [1, 1] and [len(b) for b in batches.sent] == [2]


def test_a_batch_of_unknown_outcome_answers_504_with_its_vote_ids() -> None:
    batches = Sender(KafkaOutcomeUnknown("Kafka did not answer the batch's commit"))
    with http_client(Sender(), batches) as client:
        answer = client.post("/votes/batch", json={"votes": [GOOD, GOOD | {"vote_id": "mine"}]})
    assert answer.status_code == 504
    body = answer.json()
    assert len(body["vote_ids"]) == 2 and body["vote_ids"][1] == "mine"
    assert "may or may not be counted" in body["detail"]


def test_a_refused_batch_answers_503_without_vote_ids() -> None:
    with http_client(Sender(), Sender(KafkaUnavailable("aborted"))) as client:
        answer = client.post("/votes/batch", json={"votes": [GOOD, GOOD]})
    assert answer.status_code == 503 and set(answer.json()) == {"detail"}


def test_a_grpc_batch_of_unknown_outcome_is_deadline_exceeded() -> None:
    import grpc

    from serve_app.grpc_stubs import votes_pb2 as pb
    from tests.unit.ingress.test_hostile_input import make_ingress, run_rpc

    ingress = make_ingress()
    ingress._writes = WriteSide(
        Sender(),
        Metrics(),
        None,
        1,
        Sender(KafkaOutcomeUnknown("Kafka did not answer the commit")),
    )
    vote = pb.Vote(name="Sin Rumbo", album="x", year=2000, rank=1)
    _reply, context, _ = run_rpc("CastBatch", pb.VoteBatch(votes=[vote, vote]), ingress)
    assert context.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert context.details is not None and "may or may not be counted" in context.details
