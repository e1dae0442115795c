"""LiveFeed: one ticker per replica for every /events stream, streams that end themselves."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from serve_app.read.read_side import LiveFeed, sse_event


def events(chunks: list[bytes]) -> list[dict[str, Any]]:
    found = []
    for chunk in chunks:
        text = chunk.decode()
        if text.startswith("event: snapshot\n"):
            found.append(json.loads(text.split("data: ", 1)[1]))
    return found


async def collect(feed: LiveFeed, lifetime_s: float, keepalive_s: float = 10.0) -> list[bytes]:
    return [chunk async for chunk in feed.stream(lifetime_s, retry_ms=250, keepalive_s=keepalive_s)]


def test_sse_event_is_one_line_of_json_whatever_the_names() -> None:
    chunk = sse_event("snapshot", {"name": "line\nbreak </script>"})
    text = chunk.decode()
    assert text.count("\n") == 3 and text.endswith("\n\n")
    assert json.loads(text.split("data: ", 1)[1]) == {"name": "line\nbreak </script>"}


def test_streams_share_one_read_per_tick_and_end_themselves() -> None:
    reads = 0

    async def read() -> dict[str, int]:
        nonlocal reads
        reads += 1
        return {"tick": reads}

    async def scenario() -> tuple[list[bytes], list[bytes], list[bytes]]:
        feed = LiveFeed(read, tick_s=0.05)
        results = await asyncio.gather(*(collect(feed, 0.5) for _ in range(3)))
        await asyncio.sleep(0.2)  # no listener: the ticker stops
        assert feed.listeners == 0
        return results

    first, second, third = asyncio.run(scenario())
    assert first[0] == b"retry: 250\n\n"
    ticks = [e["tick"] for e in events(first)]
    assert len(ticks) >= 5 and ticks == sorted(ticks)
    # Three streams, one read per tick: the reads are about one stream's events, not three.
    assert reads <= len(ticks) + 3
    assert events(second)[-3:] == events(first)[-3:] == events(third)[-3:]
    settled = reads
    asyncio.run(asyncio.sleep(0.2))
    assert reads == settled


def test_a_failing_read_does_not_end_the_stream() -> None:
    calls = 0

    async def flaky() -> dict[str, int]:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise ConnectionError("redis down")
        return {"call": calls}

    chunks = asyncio.run(collect(LiveFeed(flaky, tick_s=0.05), 0.5))
    assert [e["call"] % 2 for e in events(chunks)] == [0] * len(events(chunks))
    assert len(events(chunks)) >= 2


def test_keepalive_when_no_snapshot_comes() -> None:
    async def stuck() -> dict[str, int]:
        await asyncio.sleep(10)
        return {}

    chunks = asyncio.run(collect(LiveFeed(stuck, tick_s=0.05), 0.35, keepalive_s=0.1))
    assert chunks[0] == b"retry: 250\n\n"
    assert b": keep-alive\n\n" in chunks and not events(chunks)
