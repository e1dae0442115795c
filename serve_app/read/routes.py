"""The HTTP read routes: results, the latest votes, health, the live page and its event stream.

An APIRouter that the ingress app includes (serve_app/ingress/http_api.py). The routes read with
the replica's clients, its `ReadSide`, which they get through the `read_side` dependency;
`build_http_api` puts it in `app.state`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel
from redis.exceptions import RedisError

from serve_app.domain.counting import Results
from serve_app.http_problem import Problem
from serve_app.read.read_side import (
    LIVE_MAX_STREAMS,
    RECENT_LIMIT_DEFAULT,
    RECENT_LIMIT_MAX,
    ReadSide,
    read_health,
    read_recent,
    read_results,
)


# Bodies of the read routes besides `Results` (serve_app/domain/counting.py). The routes return
# JSONResponse directly (no validation on the way out); the models are here so that the OpenAPI
# document says what the routes send.
class RecentVote(BaseModel):
    vote_id: str
    name: str
    album: str
    year: int
    rank: int
    received_at: str


class RecentVotes(BaseModel):
    votes: list[RecentVote]


class Health(BaseModel):
    kafka: str
    redis: str
    mongo: str


def read_side(request: Request) -> ReadSide:
    """Dependency: the replica's ReadSide, set by build_http_api."""
    side: ReadSide = request.app.state.read_side  # starlette's State holds Any
    return side


ReadSideDep = Annotated[ReadSide, Depends(read_side)]


_STORE_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"model": Problem, "description": "The counter store is down"},
}

read_routes = APIRouter()


@read_routes.get("/results", response_model=Results, responses=_STORE_DOWN)
async def results(read: ReadSideDep) -> Any:
    counted = await read_results(read.redis)
    if counted is None:
        return JSONResponse(status_code=503, content={"detail": "the counter store is unavailable"})
    return counted


@read_routes.get("/votes/recent", response_model=RecentVotes, responses=_STORE_DOWN)
async def recent(
    read: ReadSideDep,
    limit: int = Query(RECENT_LIMIT_DEFAULT, ge=1, le=RECENT_LIMIT_MAX),
) -> JSONResponse:
    try:
        votes = await read_recent(read.redis, limit)
    except (RedisError, OSError) as exc:
        return JSONResponse(
            status_code=503,
            content={"detail": f"the counter store is unavailable: {type(exc).__name__}"},
        )
    return JSONResponse({"votes": votes})


@read_routes.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "A part is down; it says why"}},
)
async def healthz(read: ReadSideDep) -> JSONResponse:
    health = await read_health(read)
    healthy = all(state == "ok" for state in health.values())
    return JSONResponse(status_code=200 if healthy else 503, content=health)


@cache
def _page() -> str:
    return resources.files("serve_app.read").joinpath("static/index.html").read_text()


@read_routes.get("/", include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(_page())


@read_routes.get("/events", include_in_schema=False)
async def events(read: ReadSideDep) -> Any:
    """The live page's Server-Sent Events: a results snapshot about once a second, or 503 when
    this replica already serves LIVE_MAX_STREAMS of them (the page then polls /results and
    /votes/recent instead)."""
    if read.live.listeners >= LIVE_MAX_STREAMS:
        return JSONResponse(
            status_code=503,
            content={"detail": "too many live streams"},
            headers={"Retry-After": "30"},
        )
    return StreamingResponse(
        read.live.stream(),
        media_type="text/event-stream",
        headers={
            "Cache-Control": "no-cache, no-transform",
            "X-Accel-Buffering": "no",  # nginx (the Kubernetes ingress) must not buffer it
        },
    )
