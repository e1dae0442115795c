"""The write budget: how much write work one ingress replica takes on before it sheds load."""

from __future__ import annotations

import asyncio
from typing import Any

from serve_app.ingress.admission import Admission, WriteBudget
from serve_app.ingress.limits import BodyLimits


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def admitted(budget: WriteBudget, size: int, arrived: float | None = None) -> Admission:
    admission = budget.admit(size, arrived)
    assert admission is not None, f"{size} bytes were shed: {budget.describe()}"
    return admission


def test_an_idle_replica_admits_any_request_and_a_busy_one_only_what_fits() -> None:
    budget = WriteBudget(max_bytes=1000, clock=FakeClock())
    big = budget.admit(5000)  # idle: even more than the budget (one request of any legal size)
    assert big is not None and budget.admit(1) is None
    budget.release(big)
    first, second = budget.admit(600), budget.admit(400)
    assert first is not None and second is not None and budget.admit(1) is None
    budget.release(second)
    assert budget.admit(300) is not None and budget.in_flight == 900
    assert "900 bytes" in budget.describe() and "at most 1000" in budget.describe()


def test_slow_writes_cut_the_limit_in_proportion_once_per_round() -> None:
    clock = FakeClock()
    budget = WriteBudget(max_bytes=100_000, latency_target_s=5, min_bytes=1000, clock=clock)
    early = [admitted(budget, 10_000) for _ in range(10)]
    clock.now = 20.0  # they all took 4x the target
    budget.release(early[0])
    assert budget.limit == 25_000
    for admission in early[1:]:
        budget.release(admission)
    assert budget.limit == 25_000  # admitted before the cut: they do not cut again
    late = admitted(budget, 10_000, arrived=20.0)
    clock.now = 30.0  # admitted after the cut and still 2x the target: cut again
    budget.release(late)
    assert budget.limit == 12_500
    assert budget.admit(10_000) is not None and budget.admit(5000) is None  # 15,000 > 12,500


def test_fast_writes_grow_the_limit_back_up_to_the_maximum() -> None:
    clock = FakeClock()
    budget = WriteBudget(max_bytes=50_000, latency_target_s=5, min_bytes=1000, clock=clock)
    budget.limit = 10_000  # after an overload
    admission = admitted(budget, 8000)
    clock.now = 1.0  # under half the target: room to grow by its size
    budget.release(admission)
    assert budget.limit == 18_000
    admission = admitted(budget, 8000)
    clock.now = 4.0  # 3 s: under the target, over half of it: hold
    budget.release(admission)
    assert budget.limit == 18_000
    for _ in range(10):
        budget.release(admitted(budget, 8000))
    assert budget.limit == 50_000


def test_the_limit_has_a_floor_and_the_time_counts_from_arrival() -> None:
    clock = FakeClock()
    budget = WriteBudget(max_bytes=100_000, latency_target_s=5, min_bytes=20_000, clock=clock)
    admission = admitted(
        budget, 100, arrived=-95.0
    )  # its body took 95 s to arrive before admission
    budget.release(admission)
    assert budget.limit == 20_000  # 100,000 * 5 / 95 would be 5,263: a normal stream still fits
    assert "at most 20000 now" in budget.describe()


def test_the_limit_starts_at_the_maximum_and_the_floor_stays_below_it() -> None:
    budget = WriteBudget(
        max_bytes=500, latency_target_s=2, retry_after_s=3, min_bytes=1000, clock=FakeClock()
    )
    assert (budget.limit, budget.min_bytes, budget.latency_target_s, budget.retry_after_s) == (
        500,
        500,
        2,
        3,
    )


def test_release_never_goes_negative() -> None:
    budget = WriteBudget(max_bytes=10, clock=FakeClock())
    budget.release(Admission(5, 0.0))
    assert budget.in_flight == 0


async def _post(limits: BodyLimits, body: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", b"application/json")]}
    await limits(scope, receive, send)
    return (
        sent[0]["status"],
        dict(sent[0]["headers"]),
        b"".join(m.get("body", b"") for m in sent[1:]),
    )


def test_the_middleware_sheds_past_the_budget_with_503_and_retry_after() -> None:
    budget = WriteBudget(max_bytes=100, retry_after_s=2)
    seen: list[int] = []
    rejected: list[int] = []

    async def app(_scope: Any, receive: Any, send: Any) -> None:
        seen.append(budget.in_flight)  # the body being handled is counted while it runs
        await receive()
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limits = BodyLimits(app, on_reject=rejected.append, budget=budget)
    assert asyncio.run(_post(limits, b"x" * 80))[0] == 202
    assert seen == [80] and budget.in_flight == 0  # released when the request ended

    assert budget.admit(50) is not None  # another request is in flight
    status, headers, body = asyncio.run(_post(limits, b"x" * 80))
    assert status == 503 and headers[b"retry-after"] == b"2" and b"retry shortly" in body
    assert rejected == [503] and seen == [80]  # the app never saw the shed request
    assert budget.in_flight == 50
