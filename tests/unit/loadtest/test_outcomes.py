"""The careful client's reading of a failed answer (loadtest/outcomes.py). No services."""

from __future__ import annotations

import pytest

from loadtest import outcomes


@pytest.mark.parametrize("status", [0, 429, 500, 502, 503, 504])
def test_an_answer_that_may_not_be_final_is_retried(status: int) -> None:
    # 500: Serve's proxy when the replica that took the vote died with its pod (it may have
    # produced first); 0: no answer at all.
    assert outcomes.failed_outcome(status) == outcomes.Outcome.RETRY


@pytest.mark.parametrize("status", [400, 401, 404, 413, 415, 422])
def test_a_refusal_is_final(status: int) -> None:
    assert outcomes.failed_outcome(status) == outcomes.Outcome.REJECTED


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("UNAVAILABLE", outcomes.Outcome.RETRY),
        ("DEADLINE_EXCEEDED", outcomes.Outcome.RETRY),
        ("RESOURCE_EXHAUSTED", outcomes.Outcome.RETRY),
        ("INTERNAL", outcomes.Outcome.RETRY),
        ("UNKNOWN", outcomes.Outcome.RETRY),
        ("INVALID_ARGUMENT", outcomes.Outcome.REJECTED),
        ("UNAUTHENTICATED", outcomes.Outcome.REJECTED),
    ],
)
def test_grpc_codes(code: str, outcome: str) -> None:
    assert outcomes.failed_outcome(code) == outcome
