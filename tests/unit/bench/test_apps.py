"""bench.apps' no-op floor answers our routes as the load generator expects, doing no work."""

from __future__ import annotations

from starlette.testclient import TestClient

from bench.apps import _noop_http_app


def test_the_noop_routes_answer_like_ours_without_validation() -> None:
    client = TestClient(_noop_http_app())
    single = client.post("/votes", content=b'{"not": "a vote"}')
    assert single.status_code == 202 and single.json()["status"] == "accepted"
    batch = client.post(
        "/votes/batch", content=b'{"votes":[{"name":"A","rank":1},{"name":"B","rank":2}]}'
    )
    assert batch.status_code == 202 and batch.json()["accepted"] == 2
    assert client.get("/healthz").status_code == 200
    assert client.get("/results").status_code == 404
