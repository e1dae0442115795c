"""The producer's own logic that needs no broker: its config, recovery from a fatal error, and
how a large batch shares the event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from devkit.waiting import wait_until
from serve_app.domain.votes import Vote, VoteRecord, accept
from serve_app.ingress.producer import (
    YIELD_EVERY_RECORDS,
    KafkaUnavailable,
    VoteProducer,
    _DeliveryReport,
    _Settlements,
    producer_config,
)
from serve_app.ingress.write_side import accept_all
from serve_app.settings import Settings

# Nothing listens here: these tests never reach a broker.
SETTINGS = Settings(kafka_bootstrap_servers="127.0.0.1:1", kafka_delivery_timeout_s=2.0)


def test_config_makes_accepted_mean_durable() -> None:
    config = producer_config(SETTINGS)
    assert config["acks"] == "all" and config["enable.idempotence"] is True
    assert config["message.timeout.ms"] == 2000


def test_locally_no_kafka_authentication_is_configured() -> None:
    config = producer_config(SETTINGS)
    assert not {"security.protocol", "sasl.mechanism", "sasl.username", "sasl.password"} & set(
        config
    )


SASL_ENV = {
    "VOTES_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "VOTES_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "VOTES_KAFKA_SASL_USERNAME": "votes-app",
    "VOTES_KAFKA_SASL_PASSWORD": "pw-from-the-votes-app-secret",
}


def test_every_kafka_client_of_the_app_logs_in_with_the_kafka_user() -> None:
    from serve_app.pool.clients import consumer_config, dlq_producer_config
    from serve_app.settings import load_settings

    settings = load_settings({"kafka_bootstrap_servers": "votes-kafka-bootstrap:9094"}, SASL_ENV)
    expected = {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "votes-app",
        "sasl.password": "pw-from-the-votes-app-secret",
    }
    for config in (
        producer_config(settings),
        consumer_config(settings),
        dlq_producer_config(settings),
    ):
        assert {key: config.get(key) for key in expected} == expected
        assert config["bootstrap.servers"] == "votes-kafka-bootstrap:9094"


def test_librdkafka_accepts_the_sasl_configuration() -> None:
    # librdkafka checks its configuration when a client is made (no broker is contacted).
    from confluent_kafka import Producer

    from serve_app.settings import load_settings

    settings = load_settings({"kafka_bootstrap_servers": "127.0.0.1:1"}, SASL_ENV)
    # log_level 0: nothing listens on port 1; the connection errors are not this test's business.
    Producer(producer_config(settings) | {"log_level": 0}).flush(0)


def test_a_fatal_error_replaces_the_producer_before_the_next_send() -> None:
    producer = VoteProducer(SETTINGS)
    try:
        first = producer._producer
        producer._producers.on_error(KafkaError(KafkaError._FATAL, "sequence gap", fatal=True))
        asyncio.run(producer.send([]))
        assert producer._producer is not first
        replaced = producer._producer
        producer._producers.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "down"))
        asyncio.run(producer.send([]))
        assert producer._producer is replaced  # a non-fatal error changes nothing
    finally:
        producer.close(timeout_s=0.1)


def _report_outcome(reports: list[KafkaError | None], expected: int) -> str:
    """Feed delivery reports from another thread, as the poller does; say how the call ended."""

    async def run() -> str:
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()
        settlements = _Settlements()
        callback = _DeliveryReport(loop, delivered, expected, settlements)

        def poll() -> None:  # what one poll() does: reports, then one hand-over
            for error in reports:
                callback(error, None)  # type: ignore[arg-type]  # no Message: the report reads none
            settlements.hand_over()

        await asyncio.to_thread(poll)
        try:
            async with asyncio.timeout(0.5):
                await delivered
        except TimeoutError:
            return "waiting"
        except KafkaUnavailable as exc:
            return f"failed: {exc}"
        return "delivered"

    return asyncio.run(run())


def test_a_call_is_delivered_only_when_its_last_record_is() -> None:
    assert _report_outcome([None, None], expected=3) == "waiting"
    assert _report_outcome([None, None, None], expected=3) == "delivered"


def test_one_failed_record_fails_the_whole_call() -> None:
    timed_out = KafkaError(KafkaError._MSG_TIMED_OUT, "Message timed out")
    outcome = _report_outcome([None, timed_out, None], expected=3)
    assert outcome.startswith("failed:") and "timed out" in outcome


def test_a_large_batch_hands_the_event_loop_back_while_it_is_produced() -> None:
    """Health checks and other requests run between slices of a batch, not after all of it."""
    producer = VoteProducer(
        Settings(kafka_bootstrap_servers="127.0.0.1:1", kafka_delivery_timeout_s=0.5)
    )
    records = [accept(Vote(name="Band", album="A", year=2000, rank=1), "http") for _ in range(350)]
    queued_seen: list[int] = []

    async def run() -> None:
        async def watch() -> None:
            while True:
                queued_seen.append(len(producer._producer))  # records waiting for the broker
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0)
        try:
            await producer.send(records)
        except KafkaUnavailable:
            pass  # no broker: the acks never come, which is not what this test is about
        finally:
            watcher.cancel()

    try:
        asyncio.run(run())
    finally:
        producer.close(timeout_s=0.1)
    # It ran at every slice boundary, not only before the first record and after the last.
    assert {100, 200, 300} <= set(queued_seen), f"the loop ran at {sorted(set(queued_seen))} queued"


def test_accepting_a_large_batch_hands_the_event_loop_back() -> None:
    votes = [Vote(name="Band", album="A", year=2000, rank=1)] * 1000
    ticks = 0

    async def run() -> list[VoteRecord]:
        nonlocal ticks

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        ticks = 0
        records = await accept_all(votes, "grpc")
        ticker.cancel()
        return records

    records = asyncio.run(run())
    assert len({r.vote_id for r in records}) == 1000 and {r.source for r in records} == {"grpc"}
    assert ticks == 1000 // YIELD_EVERY_RECORDS - 1  # once between every two slices


def test_the_poller_thread_is_named_for_per_thread_cpu() -> None:
    """bench.tools.ingress_cost and `top -H` tell the poller's CPU apart from the event loop's by
    name."""
    producer = VoteProducer(SETTINGS)
    try:
        comm = Path(f"/proc/self/task/{producer._poller.native_id}/comm")
        wait_until(lambda: comm.read_text().strip() == "kafka-poller", 5, "the poller's name")
    finally:
        producer.close(timeout_s=0.1)


def test_the_requests_one_poll_settles_wake_their_loop_once() -> None:
    async def run() -> tuple[int, list[str]]:
        loop = asyncio.get_running_loop()
        settlements = _Settlements()
        futures: list[asyncio.Future[None]] = [loop.create_future() for _ in range(5)]
        reports = [_DeliveryReport(loop, future, 1, settlements) for future in futures]
        wakeups: list[object] = []
        original = loop.call_soon_threadsafe

        def counting(callback: Any, *args: Any) -> Any:
            if getattr(callback, "__name__", "") == "_settle_all":  # not to_thread's own wake-up
                wakeups.append(args)
            return original(callback, *args)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign,assignment]  # wrapped to count wake-ups
        failed = KafkaError(KafkaError._MSG_TIMED_OUT, "Message timed out")

        def poll() -> None:
            for index, report in enumerate(reports):
                report(failed if index == 2 else None, None)  # type: ignore[arg-type]  # no Message: the report reads none
            settlements.hand_over()
            settlements.hand_over()  # nothing left: no second wake-up

        await asyncio.to_thread(poll)
        outcomes = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 1)
        return len(wakeups), [
            "failed" if isinstance(o, KafkaUnavailable) else "ok" for o in outcomes
        ]

    assert asyncio.run(run()) == (1, ["ok", "ok", "failed", "ok", "ok"])


class _FatalOnPoll:
    """A producer whose poll() raises its fatal error, as librdkafka's did on the lab's real node
    when the broker refused the idempotence PID before the Kafka setup Job made the ACLs."""

    def __init__(self) -> None:
        self.error = KafkaError(KafkaError.CLUSTER_AUTHORIZATION_FAILED, "no PID", fatal=True)

    def poll(self, _timeout: float = 0) -> int:
        raise KafkaException(self.error)

    def purge(self, **_kwargs: bool) -> None:
        pass

    def flush(self, _timeout: float = 0) -> int:
        return 0

    def __len__(self) -> int:
        return 0


class _Quiet(_FatalOnPoll):
    def poll(self, _timeout: float = 0) -> int:
        return 0


def test_a_fatal_error_raised_by_poll_keeps_the_poller_and_replaces_the_producer() -> None:
    made: list[_FatalOnPoll] = []

    def new_producer(_config: dict[str, Any]) -> Any:
        made.append(_FatalOnPoll() if not made else _Quiet())
        return made[-1]

    producer = VoteProducer(SETTINGS, new_producer=new_producer)
    try:
        wait_until(lambda: producer._producers.fatal is not None, 5, "the fatal error noted")
        assert producer._poller.is_alive(), "an uncaught poll() error ended the poller: 503 forever"
        asyncio.run(producer.send([]))
        assert producer._producer is made[1] and isinstance(made[1], _Quiet)
    finally:
        producer.close(timeout_s=0.1)
