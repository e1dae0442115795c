"""Supervision of the pool's Kafka consumer: its group membership, assignment and replacement."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from serve_app.pool.stats import PersisterStats

log = logging.getLogger("ray.serve").getChild(__name__)

# librdkafka reports the consumer's group membership in its statistics this often.
GROUP_STATS_INTERVAL_MS = 5000
# Not steady in its group this long: replaced (docs/decisions/0003-replace-stuck-consumer.md).
GROUP_STUCK_S = 60.0

# Builds a consumer that passes each statistics report (JSON) to the given callback.
ConsumerFactory = Callable[[Callable[[str], None]], Consumer]
# Told of partitions assigned to or revoked from the current consumer, inside its poll.
PartitionsHook = Callable[[Consumer, list[TopicPartition]], None]


def _nothing(_consumer: Consumer, _partitions: list[TopicPartition]) -> None:
    return None


class GroupWatch:
    """Says when a consumer's group membership has not been healthy for too long.

    Fed with librdkafka's statistics (JSON; `cgrp.state` "up" and `cgrp.join_state` "steady" is a
    member that has its assignment, even an empty one). No statistics at all count as unhealthy.
    """

    def __init__(self, now: float, stuck_after_s: float = GROUP_STUCK_S) -> None:
        self.stuck_after_s = stuck_after_s
        self.healthy_at = now  # a new consumer gets the full grace period to join
        self.state = "starting"

    def update(self, statistics_json: str, now: float) -> None:
        try:
            group = json.loads(statistics_json).get("cgrp") or {}
        except (ValueError, AttributeError):
            return
        self.state = f"{group.get('state', '?')}/{group.get('join_state', '?')}"
        if group.get("state") == "up" and group.get("join_state") == "steady":
            self.healthy_at = now

    def stuck_for(self, now: float) -> float | None:
        """Seconds without a healthy membership, once that exceeds the limit; else None."""
        unhealthy_s = now - self.healthy_at
        return unhealthy_s if unhealthy_s > self.stuck_after_s else None


class ConsumerSupervisor:
    """Owns the consume loop's consumer: subscribes it, tracks its partitions, replaces it if stuck.

    Nothing is lost by a replacement: offsets are committed only after both stores have a batch,
    so the new member (or another replica) resumes from the last commit, and the stores' guards
    make any redelivery a no-op.
    """

    def __init__(
        self,
        topic: str,
        new_consumer: ConsumerFactory,
        stats: PersisterStats,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._topic = topic
        self._new_consumer = new_consumer
        self._stats = stats
        self._clock = clock
        # The consume loop's: run inside the consumer's poll, on the loop's thread.
        self.after_assign: PartitionsHook = _nothing
        self.before_revoke: PartitionsHook = _nothing
        self.watch, self.consumer = self._start()

    def subscribe(self) -> None:
        self.consumer.subscribe(
            [self._topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def replace_if_stuck(self, now: float) -> None:
        stuck_s = self.watch.stuck_for(now)
        if stuck_s is None:
            return
        log.warning(
            "kafka consumer group membership not healthy for %.0fs (last state %s): "
            "replacing the consumer",
            stuck_s,
            self.watch.state,
        )
        # close() may wait for the unreachable coordinator: not on the consume loop's time.
        threading.Thread(
            target=close_quietly, args=(self.consumer,), name="close-stuck-consumer", daemon=True
        ).start()
        self._stats.assigned = []
        self._stats.lag = {}
        self._stats.consumers_replaced += 1
        self.watch, self.consumer = self._start()
        self.subscribe()

    def close(self) -> None:
        self.consumer.close()  # commits nothing (auto commit is off); leaves the group

    def _start(self) -> tuple[GroupWatch, Consumer]:
        watch = GroupWatch(self._clock())
        return watch, self._new_consumer(lambda stats: watch.update(stats, self._clock()))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._stats.assigned = sorted(set(self._stats.assigned) | {p.partition for p in partitions})
        log.info("assigned partitions %s", [p.partition for p in partitions])
        if consumer is self.consumer:  # not a replaced consumer closing on its own thread
            self.after_assign(consumer, partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if consumer is self.consumer:
            self.before_revoke(consumer, partitions)
        self._on_lost(consumer, partitions)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions taken away without a revoke (a lost session): their commits would fail."""
        revoked = {p.partition for p in partitions}
        self._stats.assigned = [p for p in self._stats.assigned if p not in revoked]
        log.info("revoked partitions %s", sorted(revoked))


def close_quietly(consumer: Consumer) -> None:
    try:
        consumer.close()
    except (KafkaException, RuntimeError) as exc:
        log.info("closing the replaced consumer: %s", exc)
