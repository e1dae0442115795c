"""Load generators: a raw HTTP/1.1 keep-alive client on asyncio and a grpc.aio client.

Both run closed-loop (`concurrency` requests in flight, each sent as soon as the previous one on
its connection answered) for `warmup_s + duration_s`, or open-loop at a fixed `rate`. Only
requests completed inside the measured window count for the rate and the latency percentiles;
every accepted vote (warm-up included) counts for the reconciliation.

The HTTP client speaks HTTP/1.1 directly on asyncio streams with pre-encoded bodies: a Python
client built on a full HTTP library (aiohttp, httpx) tops out at a few thousand requests/s on one
core and would measure itself, not the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.harness.payloads import Bodies, GrpcMessages
from bench.harness.stats import percentile

REQUEST_TIMEOUT_S = 15.0


@dataclass
class LoadResult:
    duration_s: float
    window_requests: int = 0
    window_votes: int = 0
    accepted_votes: int = 0  # all phases, for the reconciliation
    accepted_requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    error_votes: int = 0  # votes in failed requests (may or may not be in Kafka on a timeout)
    latencies_ms: list[float] = field(default_factory=list)
    # CPU seconds of this load-generator process (all its threads) inside the window.
    window_cpu_s: float | None = None

    def error(self, kind: str, votes: int) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.error_votes += votes

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def summary(self) -> dict[str, Any]:
        return {
            "votes_per_s": round(self.window_votes / self.duration_s, 1),
            "requests_per_s": round(self.window_requests / self.duration_s, 1),
            "p50_ms": _round(percentile(self.latencies_ms, 50)),
            "p99_ms": _round(percentile(self.latencies_ms, 99)),
            "errors": self.error_count,
            "error_kinds": dict(self.errors),
            "accepted_votes": self.accepted_votes,
            "loadgen_cpu_s": _round(self.window_cpu_s),
            "loadgen_us_per_request": self.loadgen_us_per_request(),
        }

    def loadgen_us_per_request(self) -> float | None:
        """The load generator's own CPU per request answered in the window (µs): it shares the
        cores with the server, and costs more per request the slower the server answers."""
        if self.window_cpu_s is None or not self.window_requests:
            return None
        return round(1e6 * self.window_cpu_s / self.window_requests, 1)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class Window:
    """The measured window of a run: [start + warmup, start + warmup + duration)."""

    def __init__(self, warmup_s: float, duration_s: float) -> None:
        self.start = time.monotonic()
        self.open = self.start + warmup_s
        self.close = self.open + duration_s

    def done(self) -> bool:
        return time.monotonic() >= self.close

    def inside(self, t: float) -> bool:
        return self.open <= t < self.close


class Pacer:
    """Open loop: hands out send times `1 / rate` apart (None rate: closed loop, no waiting).

    `set_rate` changes the rate while a run goes on (bench.scenarios.system's lag-bounded load).
    With
    `max_backlog_s`, slots missed while the server was slower than the rate are dropped past that
    much time behind, so a lower rate set later is not followed by a burst of late slots.
    """

    def __init__(self, rate: float | None, max_backlog_s: float | None = None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next = time.monotonic()
        self.max_backlog_s = max_backlog_s

    @property
    def rate(self) -> float | None:
        return 1.0 / self.interval if self.interval else None

    def set_rate(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        slot = self.next
        if self.max_backlog_s is not None:
            slot = max(slot, time.monotonic() - self.max_backlog_s)
        self.next = slot + self.interval
        delay = slot - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


# A coroutine run next to the load (started with it, cancelled when it ends): it sees the live
# result and the window, e.g. to steer a Pacer.
Monitor = Callable[[LoadResult, Window], Awaitable[None]]


async def _window_cpu(result: LoadResult, window: Window) -> None:
    """Sets result.window_cpu_s: this process's CPU time from the window's opening to its close
    (or to the load's end, if the load ends first: cancelled)."""
    await asyncio.sleep(max(0.0, window.open - time.monotonic()))
    opened = time.process_time()
    try:
        await asyncio.sleep(max(0.0, window.close - time.monotonic()))
    finally:
        result.window_cpu_s = time.process_time() - opened


async def _with_monitor(
    load: Awaitable[None], monitor: Monitor | None, result: LoadResult, window: Window
) -> None:
    tasks = [asyncio.create_task(_window_cpu(result, window))]
    if monitor is not None:
        tasks.append(asyncio.create_task(monitor(result, window)))
    try:
        await load
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# ---- HTTP ------------------------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    close = b"connection: close" in lower
    index = lower.find(b"\r\ncontent-length:")
    if index >= 0:
        end = lower.find(b"\r\n", index + 2)
        body = await reader.readexactly(int(lower[index + 17 : end]))
    elif b"transfer-encoding: chunked" in lower:
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            chunks.append(chunk[:-2])
        body = b"".join(chunks)
    else:
        body = b""
    return status, body, close


async def http_load(
    host: str,
    port: int,
    path: str,
    bodies: Bodies,
    *,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    rate: float | None = None,
    on_accepted: Callable[[bytes, float], None] | None = None,
    headers: dict[str, str] | None = None,
    pacer: Pacer | None = None,
    monitor: Monitor | None = None,
    ok_statuses: Collection[int] = (202,),
    accepted_of: Callable[[bytes], int] | None = None,
) -> LoadResult:
    """POST bodies to host:port/path. A status in `ok_statuses` (202) is success; a batch's
    accepted votes are its reply's `accepted` (or what `accepted_of(reply)` says).
    `pacer` (instead of `rate`) and `monitor`: see Pacer and Monitor."""
    result = LoadResult(duration_s)
    window = Window(warmup_s, duration_s)
    pacer = pacer or Pacer(rate)
    count_accepted = accepted_of or (lambda reply: int(json.loads(reply)["accepted"]))
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    prefix = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\n{extra}Content-Length: "
    ).encode()

    async def worker() -> None:
        reader = writer = None
        while not window.done():
            await pacer.wait()
            if window.done():
                break
            body = bodies.next()
            started = time.monotonic()
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, port), REQUEST_TIMEOUT_S
                    )
                writer.write(prefix + str(len(body)).encode() + b"\r\n\r\n" + body)
                status, reply, close = await asyncio.wait_for(
                    _read_response(reader), REQUEST_TIMEOUT_S
                )
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ValueError,
            ) as exc:
                result.error(f"connection:{type(exc).__name__}", bodies.votes)
                writer = _close(writer)
                await asyncio.sleep(0.05)
                continue
            except TimeoutError:
                result.error("timeout", bodies.votes)
                writer = _close(writer)
                continue
            finished = time.monotonic()
            if status in ok_statuses:
                votes = bodies.votes
                if votes > 1:
                    votes = count_accepted(reply)
                result.accepted_votes += votes
                result.accepted_requests += 1
                if window.inside(finished):
                    result.window_requests += 1
                    result.window_votes += votes
                    result.latencies_ms.append((finished - started) * 1000)
                if on_accepted is not None:
                    on_accepted(reply, finished)
            else:
                result.error(f"http_{status}", bodies.votes)
                if status == 503:
                    await asyncio.sleep(0.05)
            if close:
                writer = _close(writer)
        _close(writer)

    await _with_monitor(
        asyncio.gather(*(worker() for _ in range(concurrency))), monitor, result, window
    )
    return result


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()


# ---- gRPC ------------------------------------------------------------------------------------


async def grpc_load(
    target: str,
    messages: GrpcMessages,
    *,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    rate: float | None = None,
    channels: int = 1,
    metadata: Sequence[tuple[str, str]] = (),
    pacer: Pacer | None = None,
    monitor: Monitor | None = None,
) -> LoadResult:
    import grpc

    from serve_app.grpc_stubs import votes_pb2 as pb

    result = LoadResult(duration_s)
    window = Window(warmup_s, duration_s)
    pacer = pacer or Pacer(rate)
    method = (
        "/votes.v1.VoteService/Cast"
        if messages.kind == "single"
        else "/votes.v1.VoteService/CastBatch"
    )
    reply_type = pb.CastReply if messages.kind == "single" else pb.BatchReply
    opened = [grpc.aio.insecure_channel(target) for _ in range(channels)]
    calls = [
        ch.unary_unary(method, request_serializer=None, response_deserializer=reply_type.FromString)
        for ch in opened
    ]

    async def worker(index: int) -> None:
        call = calls[index % len(calls)]
        while not window.done():
            await pacer.wait()
            if window.done():
                break
            started = time.monotonic()
            try:
                reply = await call(
                    messages.next(), timeout=REQUEST_TIMEOUT_S, metadata=metadata or None
                )
            except grpc.aio.AioRpcError as exc:
                result.error(f"grpc_{exc.code().name}", messages.votes)
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                    await asyncio.sleep(0.05)
                continue
            finished = time.monotonic()
            votes = 1 if messages.kind == "single" else reply.accepted
            result.accepted_votes += votes
            result.accepted_requests += 1
            if window.inside(finished):
                result.window_requests += 1
                result.window_votes += votes
                result.latencies_ms.append((finished - started) * 1000)

    try:
        await _with_monitor(
            asyncio.gather(*(worker(i) for i in range(concurrency))), monitor, result, window
        )
    finally:
        for channel in opened:
            await channel.close()
    return result


def run_http(*args: Any, **kwargs: Any) -> LoadResult:
    import uvloop

    return uvloop.run(http_load(*args, **kwargs))


def run_grpc(*args: Any, **kwargs: Any) -> LoadResult:
    return asyncio.run(grpc_load(*args, **kwargs))
