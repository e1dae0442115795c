"""The load generator's own CPU per request: measured in its window, kept per repeat, summed up
as a median and shown beside each scenario's rate."""

from __future__ import annotations

import asyncio
import time

from bench.harness import fleet, loadgen
from bench.harness.report.sections import table
from bench.harness.summary import summarize_runs


def test_the_load_generator_measures_its_cpu_in_the_window() -> None:
    result = loadgen.LoadResult(duration_s=0.05)
    window = loadgen.Window(warmup_s=0.0, duration_s=0.05)

    async def busy_load() -> None:
        started = time.process_time()
        # Until the window closed and some CPU was spent (a busy machine may give us little).
        while not window.done() or time.process_time() - started < 0.02:
            result.window_requests += 1
            await asyncio.sleep(0)

    asyncio.run(loadgen._with_monitor(busy_load(), None, result, window))
    assert result.window_cpu_s is not None and result.window_cpu_s > 0
    summary = result.summary()
    assert summary["loadgen_cpu_s"] == round(result.window_cpu_s, 2)
    assert summary["loadgen_us_per_request"] == round(
        1e6 * result.window_cpu_s / result.window_requests, 1
    )


def test_no_request_in_the_window_gives_no_figure() -> None:
    result = loadgen.LoadResult(duration_s=1.0, window_cpu_s=0.5)
    assert result.summary()["loadgen_us_per_request"] is None


def test_a_fleet_adds_its_processes_cpu() -> None:
    one = loadgen.LoadResult(duration_s=1.0, window_requests=100, window_cpu_s=0.25)
    two = loadgen.LoadResult(duration_s=1.0, window_requests=300, window_cpu_s=0.15)
    merged = fleet.merge([one, two])
    assert merged.summary()["loadgen_us_per_request"] == 1000.0  # 0.4 s over 400 requests


def test_the_report_shows_it_beside_the_rate() -> None:
    runs = [
        {"votes_per_s": rate, "loadgen_us_per_request": us, "reconciled": True, "errors": 0}
        for rate, us in ((1000, 80.0), (900, 95.0), (1100, 70.0))
    ]
    scenario = summarize_runs("plain_http_peer", runs)
    assert scenario["loadgen_us_per_request"] == 80.0  # the median, beside votes_per_s
    assert scenario["votes_per_s"] == 1000
    header, _align, row = table([scenario])
    columns = [c.strip() for c in header.strip("|").split("|")]
    values = [c.strip() for c in row.strip("|").split("|")]
    assert columns[columns.index("votes/s (median)") + 2] == "loadgen µs/request"
    assert values[columns.index("loadgen µs/request")] == "80"
