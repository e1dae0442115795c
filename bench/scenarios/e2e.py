"""`e2e_latency`: from a vote's acceptance (its 202) to its appearance in the results.

Background load: single votes over HTTP at a fixed rate (open loop). Probes: every 100 ms one more
vote for a band of its own ("Probe <run> <n>"); a poller reads the band counters every 10 ms and
notes when each probe's band shows up. `/results` reads exactly these counters (one Redis
pipeline, no cache), so this is the moment /results would show the vote; a final GET /results
confirms the total.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from bench.harness import loadgen
from bench.harness.env import REDIS_HOST, REDIS_PORT
from bench.harness.payloads import Bodies
from bench.harness.plan import suffix_of
from bench.harness.stats import percentile
from devkit.kafka import readable_records
from serve_app.stores import redis_counts as rc

if TYPE_CHECKING:
    from bench.harness.runner import Bench
    from bench.harness.serve_instance import ServeInstance

PROBE_EVERY_S = 0.1
POLL_EVERY_S = 0.01


async def _probe(host: str, port: int, band: str) -> float | None:
    """POST one probe vote on a fresh connection; the monotonic time of its 202, or None."""
    body = json.dumps({"name": band, "album": "Sonda", "year": 2024, "rank": 1}).encode()
    request = (
        f"POST /votes HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        writer.write(request)
        status, _reply, _close = await asyncio.wait_for(loadgen._read_response(reader), 15)
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
        return None
    finally:
        if writer is not None:
            writer.close()
    return time.monotonic() if status == 202 else None


async def records_and_counted(
    topic: str, records_before: int, counters: Any, counted_before: int, drain_timeout_s: float
) -> tuple[int, int]:
    """Records the run wrote to the topic, as the pool reads them (read_committed: a batch's
    transaction marker takes an offset but is no record), and the votes counted since, once
    they reach the records or after drain_timeout_s."""
    records = readable_records(topic) - records_before
    deadline = time.monotonic() + drain_timeout_s
    counted = 0
    while time.monotonic() < deadline:
        counted = int(await counters.get(rc.TOTAL) or 0) - counted_before
        if counted >= records:
            break
        await asyncio.sleep(0.1)
    return records, counted


async def _run(
    http_url: str,
    topic: str,
    redis_db: int,
    rate: float,
    warmup_s: float,
    duration_s: float,
    run_tag: str,
    drain_timeout_s: float,
) -> dict[str, Any]:
    import redis.asyncio as aioredis

    parts = urlsplit(http_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    counters = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db)
    counted_before = int(await counters.get(rc.TOTAL) or 0)
    records_before = readable_records(topic)
    accepted_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    probe_failures = 0
    window_open = time.monotonic() + warmup_s
    stop = asyncio.Event()
    probes_done = asyncio.Event()  # the last probe, in flight when `stop` is set, is recorded
    tag = f"{run_tag}-{time.monotonic_ns() % 10**6}"

    async def probes() -> None:
        nonlocal probe_failures
        n = 0
        while not stop.is_set():
            band = f"Probe {tag} {n}"
            n += 1
            at = await _probe(host, port, band)
            if at is None:
                probe_failures += 1
            elif at >= window_open:
                accepted_at[band] = at
            else:
                accepted_at[band] = -at  # warm-up probe: counted, not measured
            await asyncio.sleep(PROBE_EVERY_S)

    async def poller() -> None:
        while True:
            waiting = [b for b in accepted_at if b not in seen_at]
            if probes_done.is_set() and not waiting:
                return
            if waiting:
                values = await counters.hmget(rc.BY_BAND, waiting)
                now = time.monotonic()
                for band, value in zip(waiting, values, strict=True):
                    if value is not None:
                        seen_at[band] = now
            await asyncio.sleep(POLL_EVERY_S)

    probe_task = asyncio.create_task(probes())
    poll_task = asyncio.create_task(poller())
    background = await loadgen.http_load(
        host,
        port,
        "/votes",
        Bodies("single", tag),
        concurrency=64,
        warmup_s=warmup_s,
        duration_s=duration_s,
        rate=rate,
    )
    stop.set()
    await probe_task
    probes_done.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(poll_task, drain_timeout_s)
    poll_task.cancel()
    measured = [1000 * (seen_at[b] - t) for b, t in accepted_at.items() if t > 0 and b in seen_at]
    missing = [b for b in accepted_at if b not in seen_at]

    accepted = background.accepted_votes + len(accepted_at)
    records, counted = await records_and_counted(
        topic, records_before, counters, counted_before, drain_timeout_s
    )
    await counters.aclose()
    async with httpx.AsyncClient(base_url=http_url, timeout=10) as client:
        results_total = (await client.get("/results")).json()["total"]
    p50, p99 = percentile(measured, 50), percentile(measured, 99)
    return {
        "votes_per_s": round(background.window_votes / duration_s, 1),
        "p50_ms": None if p50 is None else round(p50, 1),
        "p99_ms": None if p99 is None else round(p99, 1),
        "max_ms": round(max(measured), 1) if measured else None,
        "probes": len(measured),
        "errors": background.error_count + probe_failures + len(missing),
        "error_kinds": background.errors
        | ({"probe_failed": probe_failures} if probe_failures else {})
        | ({"probe_never_seen": len(missing)} if missing else {}),
        "accepted": accepted,
        "kafka_records": records,
        "counted": counted,
        "results_total": results_total,
        "reconciled": accepted == records == counted and results_total == counted_before + counted,
        "reconciliation": f"accepted {accepted} == records in Kafka {records} == counted {counted} "
        f"(/results total {results_total})",
        "background_p99_ms": background.summary()["p99_ms"],
    }


def e2e_latency(
    http_url: str,
    topic: str,
    redis_db: int,
    *,
    rate: float,
    warmup_s: float,
    duration_s: float,
    run_tag: str,
    drain_timeout_s: float = 120,
) -> dict[str, Any]:
    import uvloop

    return uvloop.run(
        _run(http_url, topic, redis_db, rate, warmup_s, duration_s, run_tag, drain_timeout_s)
    )


def measure(bench: Bench, instance: ServeInstance, topic: str) -> None:
    """e2e_latency on the running whole app, at --e2e-rate or half the best single rate."""
    rate = bench.args.e2e_rate
    suffix = suffix_of(instance.mode)
    if rate is None:
        best = [
            s["votes_per_s"]
            for n in ("serve_http_single", "serve_grpc_single")
            if (s := bench.find(n + suffix)) and s.get("votes_per_s")
        ]
        rate = 0.5 * max(best) if best else 100.0
    rate = max(5.0, rate)
    runs = bench.repeat(
        "e2e_latency",
        lambda: e2e_latency(
            instance.http_url,
            topic,
            bench.args.redis_db,
            rate=rate,
            warmup_s=bench.plan.warmup_s,
            duration_s=bench.plan.e2e_duration_s,
            run_tag=bench.names.run_id,
            drain_timeout_s=bench.plan.drain_timeout_s,
        ),
    )
    bench.record(
        "e2e_latency",
        runs,
        path="http",
        rate_votes_per_s=round(rate, 1),
        mode=instance.mode,
        note="p50/p99: a vote's 202 -> its band's count visible in Redis (what /results reads)",
    )
