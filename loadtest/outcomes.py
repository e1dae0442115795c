"""What a vote's attempt came to, and which failed answers are retried. Pure: no locust."""

from __future__ import annotations


class Outcome:
    ACCEPTED = "accepted"
    RETRY = "retry"  # ambiguous: may or may not be in Kafka; retry with the same vote_ids
    REJECTED = "rejected"  # refused for good; nothing was stored


# Failed answers retried with the same vote_ids: the vote may still be accepted (429,
# RESOURCE_EXHAUSTED) or may already be in Kafka. A 500 / INTERNAL / UNKNOWN is a server that
# failed mid-way: on a lost pod, Serve's proxy answers 500 for a replica that died after producing
# (docs/kubernetes.md, pod loss). Status 0 is a connection error or a timeout.
RETRY_HTTP = frozenset({0, 429, 500, 502, 503, 504})
RETRY_GRPC = frozenset(
    {"UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN"}
)


def failed_outcome(status: int | str) -> str:
    """RETRY or REJECTED for a failed answer: an HTTP status (0: no answer) or a gRPC code name."""
    retry = status in RETRY_HTTP if isinstance(status, int) else status in RETRY_GRPC
    return Outcome.RETRY if retry else Outcome.REJECTED
