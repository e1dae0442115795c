"""confluent-kafka client errors: logged without flooding the replica logs, and a producer that
is replaced after a fatal one.

While a broker is down librdkafka reports the same connection error many times a second; one
line per distinct error per interval says everything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Producer

log = logging.getLogger("ray.serve").getChild(__name__)


class KafkaErrorLog:
    """An `error_cb` for confluent-kafka clients that logs each distinct error once per interval."""

    def __init__(self, client: str, interval_s: float = 30.0) -> None:
        self._log = logging.getLogger("ray.serve").getChild(f"serve_app.kafka.{client}")
        self._client = client
        self._interval_s = interval_s
        self._last_logged: dict[str, float] = {}

    def __call__(self, error: KafkaError) -> None:
        text = error.str()
        now = time.monotonic()
        if now - self._last_logged.get(text, -self._interval_s) >= self._interval_s:
            self._last_logged[text] = now
            self._log.warning("kafka %s: %s", self._client, text)


class ReplaceableProducer:
    """Holds a Producer and replaces it after a fatal error.

    An idempotent producer can hit an unrecoverable error (e.g. a sequence gap after records timed
    out while the broker was down): it then refuses everything until replaced. The `error_cb`
    notes it; the owner calls `replace_if_fatal()` before it produces again and drains the broken
    producer it gets back (its records' delivery reports then say they failed).
    """

    def __init__(
        self,
        client: str,
        config: dict[str, Any],
        new_producer: Callable[[dict[str, Any]], Producer] = Producer,
    ) -> None:
        self._client = client
        self._error_log = KafkaErrorLog(client)
        self._config = config | {"error_cb": self.on_error}
        self._new_producer = new_producer
        self.fatal: str | None = None
        self.producer = new_producer(self._config)

    def on_error(self, error: KafkaError) -> None:
        """The clients' `error_cb`: logged; a fatal error marks the producer for replacement."""
        self._error_log(error)
        if error.fatal():
            self.fatal = error.str()

    def replace_if_fatal(self) -> Producer | None:
        """After a fatal error, a new producer takes over: the broken one is returned, else None."""
        if self.fatal is None:
            return None
        log.error("kafka %s hit a fatal error (%s); starting a new one", self._client, self.fatal)
        broken = self.producer
        self.producer = self._new_producer(self._config)
        self.fatal = None
        return broken
