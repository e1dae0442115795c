"""ASGI middleware enforcing the contract's request limits before any route runs.

- 415 for a write whose Content-Type is missing or not JSON (FastAPI would not parse a body
  without one as JSON, and answer a misleading 422 "not an object");
- 413 for a body over the limit, decided from Content-Length when given, and otherwise while
  reading, so a client cannot make the server buffer more than the limit;
- 503 + Retry-After for a write that would take the replica past its write budget
  (serve_app/ingress/admission.py), once its body is read and its size known; the budget learns from
  the time each admitted write spent in the replica, from here to its answer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from serve_app.ingress.admission import WriteBudget

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 1024 * 1024
# The gRPC counterpart, set where Ray starts: docs/decisions/0006-serve-environment.md.
GRPC_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# A rejected body is read up to this much before the answer:
# docs/decisions/0008-drain-rejected-body.md.
DRAIN_MAX_BYTES = 4 * MAX_BODY_BYTES


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class BodyLimits:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int = MAX_BODY_BYTES,
        on_reject: Callable[[int], None] | None = None,
        budget: WriteBudget | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.on_reject = on_reject
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        # The write's time in the replica starts here: reading its body under load is part of it.
        arrived = self.budget.clock() if self.budget is not None else 0.0
        if not await self._headers_ok(scope, receive, send):
            return
        body = await self._read_body(receive, send)
        if body is None:
            return
        if self.budget is None:
            await self.app(scope, _replay(body, receive), send)
            return
        admission = self.budget.admit(len(body), arrived)
        if admission is None:
            if self.on_reject is not None:
                self.on_reject(503)
            await _send_problem(
                send,
                503,
                self.budget.describe(),
                [(b"retry-after", str(self.budget.retry_after_s).encode())],
            )
            return
        try:
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.budget.release(admission)

    async def _headers_ok(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """False once a 415, 400 or 413 decided from the headers alone has been answered."""
        headers = {name.lower(): value for name, value in scope.get("headers", [])}
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if not content_type:
            await self._reject(
                send, 415, "Content-Type must be application/json (it is missing)", unread=receive
            )
            return False
        if not is_json_media_type(content_type):
            await self._reject(
                send,
                415,
                f"Content-Type must be application/json, not {content_type!r}",
                unread=receive,
            )
            return False
        declared = headers.get(b"content-length")
        if declared is None:
            return True
        if not declared.isdigit():
            await self._reject(send, 400, "Content-Length is not a number")
            return False
        declared_bytes = int(declared)
        if declared_bytes > self.max_body_bytes:
            # Past DRAIN_MAX_BYTES draining would only delay the reset: answer at once.
            await self._reject(
                send,
                413,
                self._too_large(),
                unread=receive if declared_bytes <= DRAIN_MAX_BYTES else None,
            )
            return False
        return True

    async def _read_body(self, receive: Receive, send: Send) -> bytes | None:
        """The whole (bounded) body, or None: the client left, or a 413 has been answered."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_body_bytes:
                await self._reject(
                    send, 413, self._too_large(), unread=receive if more else None, already=size
                )
                return None
            chunks.append(chunk)
            if not more:
                return b"".join(chunks)

    def _too_large(self) -> str:
        return f"request body exceeds {self.max_body_bytes} bytes"

    async def _reject(
        self, send: Send, status: int, detail: str, unread: Receive | None = None, already: int = 0
    ) -> None:
        """Answer `status`; first read and drop the rest of the body from `unread`, if given
        (`already` bytes of it were read), so closing the connection does not reset it."""
        if unread is not None:
            await _drain(unread, already)
        if self.on_reject is not None:
            self.on_reject(status)
        await _send_problem(send, status, detail)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that hands the app the body already read, in one message, then `receive`'s."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _drain(receive: Receive, already: int = 0) -> None:
    """Read and discard the rest of a rejected request's body, up to DRAIN_MAX_BYTES in all."""
    drained = already
    while drained <= DRAIN_MAX_BYTES:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _send_problem(
    send: Send, status: int, detail: str, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(extra_headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
