"""The HTTP API of an ingress replica, built from explicit parts.

`VoteIngress.__serve_build_asgi_app__` calls `build_http_api` on the replica, after its
constructor; the unit tests call it with fakes, without Ray.
"""

from __future__ import annotations

from fastapi import FastAPI

from serve_app import __version__
from serve_app.ingress.admission import WriteBudget
from serve_app.ingress.limits import BodyLimits
from serve_app.ingress.write_routes import add_write_error_handlers, write_routes
from serve_app.ingress.write_side import WriteSide
from serve_app.metrics import IngestMetrics
from serve_app.read.read_side import ReadSide
from serve_app.read.routes import read_routes

# The `reason` tag of votes_rejected for each status BodyLimits answers itself.
_REJECT_REASONS = {413: "too_large", 415: "not_json", 400: "bad_request", 503: "overloaded"}


def build_http_api(
    *,
    budget: WriteBudget,
    write_side: WriteSide,
    read_side: ReadSide | None,
    metrics: IngestMetrics,
) -> FastAPI:
    """The FastAPI app: body limits and the write budget in front of the write and read routes.
    `read_side` may be None where only the write routes are used (the unit tests)."""
    api = FastAPI(
        title="votes",
        version=__version__,
        description="Cast votes for Guatemalan bands and watch the results live.",
    )
    # What the routes' dependencies hand them (write_routes.write_side, read.routes.read_side).
    api.state.write_side = write_side
    api.state.read_side = read_side

    def count_rejection(status: int) -> None:
        reason = _REJECT_REASONS.get(status, str(status))
        metrics.rejected.inc(tags={"path": "http", "reason": reason})

    api.add_middleware(BodyLimits, on_reject=count_rejection, budget=budget)
    add_write_error_handlers(api, metrics)
    api.include_router(write_routes)
    api.include_router(read_routes)
    return api
