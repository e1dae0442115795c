"""Logging of confluent-kafka client errors without flooding the replica logs.

While a broker is down librdkafka reports the same connection error many times a second; one
line per distinct error per interval says everything.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError


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
