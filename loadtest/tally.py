"""The exact tally of a locust run's votes, and sending one vote (or batch) until it is accepted.

Every voter of loadtest/locustfile.py sends through `send_with_retries`: an ambiguous failure is
retried with the same vote_ids, with backoff, until the vote is accepted, refused or its deadline
passes, and the tally counts each vote once. At the end the tally is written as JSON to
`--tally-file` (see loadtest/locustfile.py for what each count means).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from locust import events

from loadtest.outcomes import Outcome

log = logging.getLogger("votes.loadtest")

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 2.0


# ---- the tally -------------------------------------------------------------------------------


@dataclass
class Tally:
    accepted: int = 0  # distinct votes acknowledged
    rejected: int = 0  # votes refused for good
    in_doubt: int = 0  # votes that may or may not have been counted
    in_flight: int = 0  # votes being sent right now (become in_doubt if the test ends first)
    requests: int = 0  # write attempts
    retries: int = 0  # write attempts that repeated an earlier one

    def add(self, other: dict[str, int]) -> None:
        for key, value in other.items():
            if key in self.__dataclass_fields__:
                setattr(self, key, getattr(self, key) + int(value))


TALLY = Tally()
_TALLY_LOCK = threading.Lock()


def _count(**deltas: int) -> None:
    with _TALLY_LOCK:
        TALLY.add(deltas)


# Set when the test is stopping: no new vote starts, votes in flight finish (with their retries).
# Locust stops a user that looks idle by killing it, and one that has just woken up may already
# have sent a request: without this flag such a vote would end up in doubt.
_STOPPING = threading.Event()


@events.test_stopping.add_listener
def _stopping(**_: Any) -> None:
    _STOPPING.set()


@events.test_start.add_listener
def _started(**_: Any) -> None:
    _STOPPING.clear()


_WORKERS_IN_FLIGHT: dict[str, int] = {}


@events.report_to_master.add_listener
def _report(client_id: str, data: dict[str, Any]) -> None:
    """Distributed runs (best effort): a worker sends its counts since the last report."""
    with _TALLY_LOCK:
        snapshot = asdict(TALLY)
        in_flight = TALLY.in_flight  # a level, not a count: it stays with the worker
        TALLY.__init__()  # type: ignore[misc]
        TALLY.in_flight = in_flight
    snapshot["in_flight"] = 0
    data["votes_tally"] = snapshot
    data["votes_in_flight"] = in_flight


@events.worker_report.add_listener
def _collect(client_id: str, data: dict[str, Any]) -> None:
    if "votes_tally" in data:
        _count(**data["votes_tally"])
        _WORKERS_IN_FLIGHT[client_id] = int(data.get("votes_in_flight", 0))


@events.quitting.add_listener
def _write_tally(environment: Any, **_: Any) -> None:
    from locust.runners import WorkerRunner

    if isinstance(environment.runner, WorkerRunner):
        return
    with _TALLY_LOCK:
        # Votes still in flight when the users were stopped may or may not have been counted.
        in_flight = TALLY.in_flight + sum(_WORKERS_IN_FLIGHT.values())
        tally = asdict(TALLY) | {"in_doubt": TALLY.in_doubt + in_flight, "in_flight": 0}
    path = environment.parsed_options.tally_file if environment.parsed_options else ""
    log.info("votes tally: %s", tally)
    if path:
        with open(path, "w") as file:
            json.dump(tally, file)


# ---- retrying one vote (or one batch) until it is accepted ------------------------------------


def send_with_retries(
    votes: int, attempt: Callable[[], tuple[str, float | None]], deadline_s: float
) -> str:
    """Run `attempt` until it accepts or is rejected, or the deadline passes. Tallies `votes`."""
    if _STOPPING.is_set():
        return Outcome.REJECTED  # not sent at all: the test is ending
    _count(in_flight=votes)
    outcome, ambiguous, finished = Outcome.RETRY, False, False
    try:
        started = time.monotonic()
        delay = BACKOFF_FIRST_S
        tries = 0
        while True:
            tries += 1
            _count(requests=1, retries=1 if tries > 1 else 0)
            outcome, retry_after = attempt()
            if outcome != Outcome.RETRY:
                break
            ambiguous = True
            pause = min(max(delay, retry_after or 0), BACKOFF_MAX_S) * random.uniform(0.5, 1.0)
            if time.monotonic() + pause - started > deadline_s:
                break
            time.sleep(pause)
            delay = min(delay * 2, BACKOFF_MAX_S)
        finished = True
    finally:
        # Not finished: locust stopped the user mid-vote (GreenletExit). The vote stays in
        # flight and is reported in doubt at the end.
        if outcome == Outcome.ACCEPTED:
            _count(in_flight=-votes, accepted=votes)
        elif outcome == Outcome.REJECTED and not ambiguous:
            _count(in_flight=-votes, rejected=votes)
        elif finished:  # given up after an ambiguous failure
            _count(in_flight=-votes, in_doubt=votes)
    return outcome
