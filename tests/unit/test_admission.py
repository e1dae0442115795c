"""The write budget: how much write work one ingress replica takes on before it sheds load."""

from __future__ import annotations

import asyncio
from typing import Any

from serve_app.admission import WriteBudget
from serve_app.http_limits import BodyLimits


def test_an_idle_replica_admits_any_request_and_a_busy_one_only_what_fits() -> None:
    budget = WriteBudget(max_bytes=1000)
    assert budget.admit(5000)  # idle: even more than the budget (one request of any legal size)
    assert not budget.admit(1)
    budget.release(5000)
    assert budget.admit(600) and budget.admit(400) and not budget.admit(1)
    budget.release(400)
    assert budget.admit(300) and budget.in_flight == 900
    assert "900 bytes" in budget.describe() and "1000" in budget.describe()


def test_release_never_goes_negative() -> None:
    budget = WriteBudget(max_bytes=10)
    budget.release(5)
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
    return sent[0]["status"], dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


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

    budget.admit(50)  # another request is in flight
    status, headers, body = asyncio.run(_post(limits, b"x" * 80))
    assert status == 503 and headers[b"retry-after"] == b"2" and b"retry shortly" in body
    assert rejected == [503] and seen == [80]  # the app never saw the shed request
    assert budget.in_flight == 50
