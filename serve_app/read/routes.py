"""The HTTP read routes: results, the latest votes, health, the live page and its event stream.

An APIRouter that the ingress app includes (serve_app/ingress/http_api.py). The routes reach the
replica's `ReadSide` through the `read_side` dependency; `build_http_api` puts it in `app.state`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from serve_app.http_problem import Problem
from serve_app.read.read_side import RECENT_LIMIT_DEFAULT, RECENT_LIMIT_MAX, ReadSide


# Bodies of the read routes. They return JSONResponse directly (no validation on the way out);
# the models are here so that the OpenAPI document says what the routes send.
class ResultsBody(BaseModel):
    total: int
    by_band: dict[str, int]
    by_album: dict[str, int]
    by_year: dict[str, int]
    by_rank: dict[str, int]
    as_of: str


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
    return request.app.state.read_side  # type: ignore[no-any-return]


ReadSideDep = Annotated[ReadSide, Depends(read_side)]


_STORE_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"model": Problem, "description": "The counter store is down"},
}

read_routes = APIRouter()


@read_routes.get("/results", response_model=ResultsBody, responses=_STORE_DOWN)
async def results(read: ReadSideDep) -> JSONResponse:
    return await read.results_response()


@read_routes.get("/votes/recent", response_model=RecentVotes, responses=_STORE_DOWN)
async def recent(
    read: ReadSideDep,
    limit: int = Query(RECENT_LIMIT_DEFAULT, ge=1, le=RECENT_LIMIT_MAX),
) -> JSONResponse:
    return await read.recent_response(limit)


@read_routes.get("/healthz", response_model=Health,
                 responses={503: {"model": Health, "description": "A part is down; it says why"}})
async def healthz(read: ReadSideDep) -> JSONResponse:
    return await read.health_response()


@read_routes.get("/", include_in_schema=False)
async def page(read: ReadSideDep) -> Any:
    return read.page_response()


@read_routes.get("/events", include_in_schema=False)
async def events(read: ReadSideDep) -> Any:
    """The live page's Server-Sent Events: a results snapshot about once a second."""
    return read.events_response()
