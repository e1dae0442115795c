"""Per-run names: Kafka topics, consumer groups, MongoDB databases and Redis keys no one else uses.

A test session, an autoscaling scenario and a benchmark run each get their own, so that none of
them touches a developer's data (or another run's) and each can delete exactly what it made.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

MONGO_NAME_MAX = 63  # MongoDB's limit on a database name


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class RunNames:
    """The names of one run of `kind` ("test", "autoscale", "bench"), told apart by run_id."""

    kind: str
    run_id: str = field(default_factory=new_run_id)

    @property
    def topic(self) -> str:
        return f"votes-{self.kind}-{self.run_id}"

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"

    @property
    def group(self) -> str:
        """The pool's consumer group."""
        return f"votes-persister-{self.kind}-{self.run_id}"

    @property
    def mongo_database(self) -> str:
        return f"votes_{self.kind}_{self.run_id}"

    def topic_for(self, what: str) -> str:
        """One of several topics of the run (the benchmark has one per measurement)."""
        return f"{self.topic}-{what}"

    def group_for(self, what: str) -> str:
        return f"votes-{self.kind}-{self.run_id}-{what}"

    def mongo_database_for(self, what: str) -> str:
        return f"{self.mongo_database}_{what}"[:MONGO_NAME_MAX]

    def redis_prefix(self, what: str) -> str:
        """A prefix for Redis keys of the run's own, where it shares a Redis database."""
        return f"{self.kind}:{self.run_id}:{what}:"
