"""A careful client streaming votes while a fault happens, and the reconciliation afterwards.

The client behaves like a real careful client: every vote carries a vote_id, and a failed or
timed-out request is retried with the same vote_ids until it is accepted (bounded by a deadline).
Afterwards every accepted vote must be counted exactly once in /results and stored exactly once
in the vote log, and nothing else may be.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc
import httpx

from devkit.chaos_report import REPORT
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.grpc_stubs import votes_pb2_grpc as pb_grpc
from tests.conftest import Pipeline

FULL = os.environ.get("VOTES_CHAOS_FULL") == "1"


@dataclass
class ScenarioReport:
    scenario: str
    sent: int = 0  # distinct votes the client wanted counted
    requests: int = 0
    retries: int = 0
    accepted: int = 0  # distinct vote_ids the client saw accepted
    counted: int = 0  # /results by_band for the scenario's band
    stored: int = 0  # vote log documents for the band
    duplicates: int = 0  # vote log documents beyond one per vote_id (must be 0)
    unexpected: int = 0  # stored vote_ids the client never saw accepted
    recover_s: float = 0.0  # from the fault's end to everything counted
    rejections: dict[str, int] = field(default_factory=dict)
    shed: int = 0  # votes refused with 503 / RESOURCE_EXHAUSTED and not retried (overload only)
    notes: str = ""

    def save(self) -> None:
        REPORT.parent.mkdir(exist_ok=True)
        with REPORT.open("a") as out:
            out.write(json.dumps(asdict(self)) + "\n")


class CarefulClient:
    """Sends votes over HTTP and gRPC, single and batch; retries with the same vote_ids."""

    def __init__(
        self, pipeline: Pipeline, band: str, report: ScenarioReport, deadline_s: float
    ) -> None:
        self._pipeline = pipeline
        self._band = band
        self._report = report
        self._deadline = time.monotonic() + deadline_s
        self._lock = threading.Lock()
        self.accepted: set[str] = set()
        self._http = httpx.Client(base_url=str(pipeline.http.base_url), timeout=10)
        self._channel = grpc.insecure_channel(pipeline.grpc_target)
        self._stub = pb_grpc.VoteServiceStub(self._channel)

    def close(self) -> None:
        self._http.close()
        self._channel.close()

    def _vote(self, vote_id: str, i: int) -> dict[str, Any]:
        return {
            "name": self._band,
            "album": f"Album {i % 7}",
            "year": 1980 + i % 40,
            "rank": 1 + i % 100,
            "vote_id": vote_id,
        }

    def send(self, request_no: int, size: int) -> None:
        """One request of `size` votes (1 = single), retried until accepted or the deadline."""
        votes = [
            self._vote(f"{self._band[-8:]}-{request_no}-{k}", request_no + k) for k in range(size)
        ]
        path = ("http", "grpc")[request_no % 2]
        attempt = 0
        while time.monotonic() < self._deadline:
            attempt += 1
            outcome = self._try(path, votes)
            with self._lock:
                self._report.requests += 1
                if attempt > 1:
                    self._report.retries += 1
                if outcome == "ok":
                    self.accepted.update(v["vote_id"] for v in votes)
                    return
                self._report.rejections[outcome] = self._report.rejections.get(outcome, 0) + 1
            time.sleep(min(0.1 * attempt, 1.0))

    def _try(self, path: str, votes: list[dict[str, Any]]) -> str:
        try:
            if path == "http":
                if len(votes) == 1:
                    response = self._http.post("/votes", json=votes[0])
                else:
                    response = self._http.post("/votes/batch", json={"votes": votes})
                return "ok" if response.status_code == 202 else f"http {response.status_code}"
            messages = [pb.Vote(**v) for v in votes]
            if len(messages) == 1:
                self._stub.Cast(messages[0], timeout=10)
            else:
                self._stub.CastBatch(pb.VoteBatch(votes=messages), timeout=10)
            return "ok"
        except httpx.HTTPError as exc:
            return f"http {type(exc).__name__}"
        except grpc.RpcError as exc:
            return f"grpc {exc.code().name}"


def run_scenario(
    name: str,
    pipeline: Pipeline,
    mongo_db: Any,
    fault: Callable[[], None],
    votes: int = 2000,
    batch: int = 25,
    workers: int = 8,
    deadline_s: float = 120,
    settle_s: float = 60,
    resend_after_fault: int = 0,
) -> ScenarioReport:
    """Stream `votes` votes; call `fault()` once a third were sent; reconcile; return the report.

    `resend_after_fault`: once the fault is over, send this many of the requests sent before it
    again, same vote_ids: a client retrying requests whose 202 it never saw (a timeout). Those
    votes were stored and counted before the fault, so the vote log must still hold them.
    """
    band = f"Chaos {name} {uuid.uuid4().hex[:8]}"
    report = ScenarioReport(scenario=name)
    client = CarefulClient(pipeline, band, report, deadline_s)
    sizes = []
    remaining = votes
    while remaining > 0:  # two batches, then a single, repeating
        size = 1 if len(sizes) % 3 == 2 else min(batch, remaining)
        sizes.append(size)
        remaining -= size
    report.sent = votes
    fault_at = len(sizes) // 3
    fault_done = threading.Event()
    fault_ended_at = [0.0]
    fault_error: list[BaseException] = []

    def run_fault() -> None:
        try:
            fault()
        except BaseException as exc:  # noqa: BLE001 - reported below: a fault that failed proves nothing
            fault_error.append(exc)
        finally:
            fault_ended_at[0] = time.monotonic()
            fault_done.set()

    try:
        with ThreadPoolExecutor(workers) as pool:
            futures = []
            fault_thread: threading.Thread | None = None
            for number, size in enumerate(sizes):
                if number == fault_at:
                    fault_thread = threading.Thread(target=run_fault, daemon=True)
                    fault_thread.start()
                futures.append(pool.submit(client.send, number, size))
            for future in futures:
                future.result()
        if fault_thread is not None:
            fault_thread.join(deadline_s)
        resent = list(range(min(resend_after_fault, fault_at)))
        for number in resent:
            client.send(number, sizes[number])
        report.retries += len(resent)
        if resent:
            report.notes = (
                f"{len(resent)} requests accepted before the fault sent again after it "
                "(same vote_ids)"
            )
    finally:
        client.close()
    assert fault_done.is_set(), f"{name}: the fault did not finish"
    assert not fault_error, f"{name}: the fault itself failed: {fault_error[0]!r}"
    report.accepted = len(client.accepted)

    # Reconcile: wait (bounded) until the counters reach what the client saw accepted.
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        try:
            report.counted = pipeline.results()["by_band"].get(band, 0)
        except httpx.HTTPError:
            report.counted = -1
        if report.counted >= report.accepted:
            break
        time.sleep(0.25)
    report.recover_s = round(time.monotonic() - fault_ended_at[0], 1)
    time.sleep(1.0)  # a late duplicate would show up here
    report.counted = pipeline.results()["by_band"].get(band, 0)
    stored_ids = [d["_id"] for d in mongo_db["votes"].find({"name": band}, {"_id": 1})]
    report.stored = len(stored_ids)
    report.duplicates = len(stored_ids) - len(set(stored_ids))
    report.unexpected = len(set(stored_ids) - client.accepted)
    report.save()
    return report


def assert_exact(report: ScenarioReport) -> None:
    assert report.accepted == report.sent, f"not every vote was accepted in the end: {report}"
    assert report.counted == report.accepted, f"counted != accepted: {report}"
    assert report.stored == report.accepted, f"stored != accepted: {report}"
    assert report.duplicates == 0 and report.unexpected == 0, f"{report}"
