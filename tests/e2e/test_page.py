"""The live results page in a real browser: headless Chromium over the DevTools Protocol.

The page is opened once; votes are then cast over HTTP and gRPC, and the bars, the totals and the
latest-votes table must change in that same document (no reload), from the /events stream, with
hostile band names shown verbatim and no console error. The latest-votes table is checked against
GET /votes/recent, not for a vote of our choosing
(docs/decisions/0025-latest-votes-in-page-test.md).
The polling fallback gets the same check.
Needs Debian's chromium: scripts/install-chromium.sh (`make test` runs it).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from devkit.browser import Browser, find_chromium, launch
from devkit.waiting import wait_until
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.grpc_stubs import votes_pb2_grpc as pb_grpc
from tests.conftest import ROOT, TEST_HTTP_PORT, Pipeline

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts"
UPDATE_S = 20  # a change must show within this (the stream ticks every second)

# What the page shows, read from its DOM.
STATE_JS = """(() => {
  const rows = [...document.querySelectorAll('#bands tbody tr')];
  return {
    mode: document.body.dataset.mode,
    updates: Number(document.body.dataset.updates),
    marker: window.__notReloaded === true,
    total: document.getElementById('total').textContent,
    rate: document.getElementById('rate').textContent,
    bandsHidden: document.getElementById('bands').hidden,
    emptyShown: !document.getElementById('bands-empty').hidden,
    bands: rows.map(r => ({name: r.cells[0].textContent, count: Number(r.dataset.count),
                           others: r.classList.contains('others'),
                           width: r.querySelector('.bar').style.width})),
    albums: [...document.querySelectorAll('#albums tbody tr')].map(r => r.cells[0].textContent),
    recent: [...document.querySelectorAll('#recent tbody tr')].map(r => ({
      id: r.dataset.voteId || null, name: r.cells[0].textContent,
      album: r.cells[1] ? r.cells[1].textContent : null})),
    scripts: document.querySelectorAll('script').length,
    images: document.querySelectorAll('img').length,
    xss: window.__xss === true,
  };
})()"""


def number(text: str) -> int:
    """The page formats numbers for the locale (1,234): digits only."""
    return int("".join(ch for ch in text if ch.isdigit()) or 0)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.fail("chromium not found (/usr/bin/chromium): run scripts/install-chromium.sh")
    return path


@pytest.fixture(scope="module")
def stub(pipeline: Pipeline) -> Iterator[Any]:
    channel = grpc.insecure_channel(pipeline.grpc_target)
    yield pb_grpc.VoteServiceStub(channel)
    channel.close()


@pytest.fixture
def browser(chromium: str, pipeline: Pipeline) -> Iterator[Browser]:
    with launch(chromium) as opened:
        yield opened


def state(browser: Browser) -> dict[str, Any]:
    return browser.evaluate(STATE_JS)


def open_page(browser: Browser, query: str = "") -> None:
    browser.navigate(f"http://127.0.0.1:{TEST_HTTP_PORT}/{query}")
    browser.evaluate("window.__notReloaded = true")


def assert_no_errors(browser: Browser) -> None:
    browser.drain(0.5)
    assert browser.errors == [], browser.errors


def leading_count(pipeline: Pipeline) -> int:
    by_band = pipeline.results()["by_band"]
    return max(by_band.values(), default=0)


def chunks(total: int, size: int = 1000) -> list[int]:
    """Batch sizes that add up to total, none over the contract's 1000."""
    return [min(size, total - start) for start in range(0, total, size)]


def test_live_page_updates_without_reload(browser: Browser, pipeline: Pipeline, stub: Any) -> None:
    open_page(browser)
    first = browser.wait_for(
        f"({STATE_JS}).updates >= 1 && ({STATE_JS})", UPDATE_S, "the first snapshot"
    )
    assert first["mode"] == "live", first
    before_total = number(first["total"])

    # Enough votes to lead the board whatever earlier tests of the session cast.
    lead = leading_count(pipeline) + 10
    hostile = f'<img src=x onerror="window.__xss=true"> Los <b>Tiros</b> {uuid.uuid4().hex[:6]}'
    hostile_album = "<script>window.__xss=true</script>"
    grpc_band = f"Bohemia Suburbana {uuid.uuid4().hex[:6]}"
    grpc_votes = lead + 5
    http_votes = lead + 20
    http_ids: list[str] = []
    for size in chunks(http_votes):  # earlier tests may have cast thousands for one band
        response = pipeline.http.post(
            "/votes/batch",
            json={
                "votes": [{"name": hostile, "album": hostile_album, "year": 1997, "rank": 1}] * size
            },
        )
        assert response.status_code == 202, response.text
        http_ids += response.json()["vote_ids"]
    grpc_ids: list[str] = []
    for size in chunks(grpc_votes):
        reply = stub.CastBatch(
            pb.VoteBatch(
                votes=[pb.Vote(name=grpc_band, album="Tierra de Nadie", year=1993, rank=2)] * size
            ),
            timeout=30,
        )
        assert reply.accepted == size
        grpc_ids += reply.vote_ids
    expected_total = before_total + http_votes + grpc_votes

    def shows_the_votes() -> dict[str, Any] | None:
        now = state(browser)
        counts = {b["name"]: b["count"] for b in now["bands"]}
        if (
            counts.get(hostile) != http_votes
            or counts.get(grpc_band) != grpc_votes
            or number(now["total"]) < expected_total
        ):
            return None
        # All counted: the table must be the read side's latest votes. Which of a request's votes
        # those are is up to the pool's counting order:
        # docs/decisions/0025-latest-votes-in-page-test.md
        latest = [v["vote_id"] for v in pipeline.http.get("/votes/recent").json()["votes"]]
        return now if [r["id"] for r in now["recent"]] == latest else None

    now = wait_until(shows_the_votes, UPDATE_S, "the page to show the new votes")
    assert now["marker"], "the page was reloaded"
    assert now["mode"] == "live"
    assert now["updates"] > first["updates"]
    # Hostile input is shown as text: verbatim, never as markup.
    assert any(b["name"] == hostile for b in now["bands"])
    assert hostile_album in now["albums"]
    assert not now["xss"] and now["scripts"] == 1 and now["images"] == 0
    # The leader is the HTTP band; bars are proportional to the largest row ("others" too).
    assert now["bands"][0]["name"] == hostile
    widest = max(b["count"] for b in now["bands"])
    for row in now["bands"]:
        assert abs(float(row["width"].rstrip("%")) - 100 * row["count"] / widest) < 0.01, row
    # The latest-votes table streamed in this test's votes; the gRPC ones, cast last, lead it.
    ids = [r["id"] for r in now["recent"]]
    assert len(ids) == 20 and set(ids) <= set(http_ids) | set(grpc_ids)
    assert ids[0] in grpc_ids, now["recent"][0]
    # Votes per second: computed from votes:per_second, so non-zero right after a burst.
    wait_until(
        lambda: float(state(browser)["rate"].replace(",", "")) > 0,
        UPDATE_S,
        "a non-zero votes-per-second figure",
    )
    # The band rows add up to the total, "others" included.
    final = wait_until(
        lambda: (
            (s := state(browser))
            and sum(b["count"] for b in s["bands"]) == number(s["total"])
            and s
        ),
        UPDATE_S,
        "band rows that add up to the total",
    )
    assert len(final["bands"]) <= 16

    ARTIFACTS.mkdir(exist_ok=True)
    browser.screenshot(ARTIFACTS / "page.png")
    assert (ARTIFACTS / "page.png").stat().st_size > 10_000
    assert_no_errors(browser)


def test_many_bands_show_top_fifteen_and_others(browser: Browser, pipeline: Pipeline) -> None:
    suffix = uuid.uuid4().hex[:6]
    votes = [
        {"name": f"Banda {i:03d} {suffix}", "album": "Demo", "year": 2010, "rank": 5}
        for i in range(40)
    ]
    assert pipeline.http.post("/votes/batch", json={"votes": votes}).status_code == 202
    names = {vote["name"] for vote in votes}
    wait_until(lambda: names <= set(pipeline.results()["by_band"]), UPDATE_S, "40 bands counted")
    total_bands = len(pipeline.results()["by_band"])
    open_page(browser)
    # Earlier tests' bands already make an "others" row: wait for the one that counts ours too.
    others_text = json.dumps(f"Others ({total_bands - 15} bands)")
    now = browser.wait_for(
        f"(s => s.bands.some(b => b.others && b.name === {others_text}) && s)({STATE_JS})",
        UPDATE_S,
        "an others row with every band",
    )
    assert len(now["bands"]) == 16 and now["bands"][-1]["others"]
    others = now["bands"][-1]["name"]
    assert others.startswith("Others (") and number(others) == total_bands - 15, others
    assert_no_errors(browser)


def test_polling_fallback_updates_too(browser: Browser, pipeline: Pipeline) -> None:
    open_page(browser, "?transport=poll")
    first = browser.wait_for(f"(s => s.updates >= 1 && s)({STATE_JS})", UPDATE_S, "the first poll")
    assert first["mode"] == "polling"
    band = f"Radio Viejo {uuid.uuid4().hex[:6]}"
    vote_id = pipeline.http.post(
        "/votes", json={"name": band, "album": "A", "year": 2001, "rank": 3}
    ).json()["vote_id"]
    now = browser.wait_for(
        f"(s => s.recent.some(r => r.id === {json.dumps(vote_id)}) && s)({STATE_JS})",
        UPDATE_S,
        "the polled page to show the new vote",
    )
    assert now["marker"] and now["mode"] == "polling"
    assert number(now["total"]) >= number(first["total"]) + 1
    assert_no_errors(browser)


def test_phone_layout_has_no_horizontal_scroll(browser: Browser, pipeline: Pipeline) -> None:
    browser.set_viewport(390, 844, mobile=True)
    open_page(browser)
    browser.wait_for(f"({STATE_JS}).updates >= 1", UPDATE_S, "the first snapshot")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.screenshot(ARTIFACTS / "page-phone.png", full_page=False)
    overflow = browser.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    wide = browser.evaluate("""[...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1
                     && !e.closest('.scroll'))
        .map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 10)""")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone's screen: {wide}"
    assert_no_errors(browser)


def test_empty_state_before_any_vote(chromium: str, tmp_path: Path) -> None:
    """Rendered from a snapshot with no votes, without a server: the empty state, no error."""
    html = (ROOT / "serve_app/read/static/index.html").read_text()
    empty = {
        "results": {
            "total": 0,
            "by_band": {},
            "by_album": {},
            "by_year": {},
            "by_rank": {},
            "as_of": "2026-01-01T00:00:00.000Z",
        },
        "recent": [],
        "per_second": {"start": 0, "counts": [0] * 60},
        "unavailable": [],
    }
    # A stand-in EventSource that delivers one empty snapshot, then nothing.
    shim = (
        "<script>window.EventSource = class { constructor() { this.readyState = 1;"
        " setTimeout(() => this.l && this.l({data: " + json.dumps(json.dumps(empty)) + "}), 50); }"
        " addEventListener(type, fn) { if (type === 'snapshot') this.l = fn; } };"
        " window.EventSource.CLOSED = 2;</script>"
    )
    page = tmp_path / "index.html"
    page.write_text(html.replace("<title>", shim + "<title>", 1))
    with launch(chromium) as browser:
        browser.navigate(page.as_uri())
        now = browser.wait_for(f"(s => s.updates >= 1 && s)({STATE_JS})", 10, "the snapshot")
        assert now["emptyShown"] and now["bandsHidden"]
        assert now["total"] == "0" and now["recent"][0]["name"] == "No votes yet."
        assert_no_errors(browser)
