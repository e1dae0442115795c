"""The "Contest" dashboard: the counters in Redis, for the audience."""

from __future__ import annotations

from grafana_foundation_sdk.builders import barchart, table, timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.models.common import BigValueGraphMode, VisibilityMode, VizOrientation

from deployments.dashboards.data_sources import REDIS
from deployments.dashboards.panels import legend_bottom, redis_stat
from deployments.dashboards.redis_plugin import (
    Redis,
    counts_of,
    rename,
    seconds_as_time,
    sort_by,
    to_numbers,
)
from serve_app.stores import redis_counts as keys


def contest() -> Dashboard:
    """What the audience watches: the counters the persister keeps in Redis."""
    return (
        Dashboard("Contest")
        .uid("votes-contest")
        .description("Votes for Guatemalan bands, live from the Redis counters (votes:*).")
        .tags(["votes", "generated"])
        .readonly()
        .refresh("5s")
        .time("now-1h", "now")
        .with_row(Row("Results"))
        .with_panel(
            redis_stat(
                "Total votes",
                "GET votes:total: every counted vote.",
                Redis("get", keys.TOTAL),
                "lastNotNull",
            )
            .span(6)
            .height(5)
        )
        .with_panel(
            redis_stat(
                "Bands",
                "HLEN votes:by_band: bands with at least one vote.",
                Redis("hlen", keys.BY_BAND),
                "lastNotNull",
            )
            .span(6)
            .height(5)
        )
        .with_panel(
            redis_stat(
                "Peak votes per second (last hour)",
                "The busiest second in votes:per_second (by time received).",
                Redis("hgetall", keys.PER_SECOND),
                "max",
                BigValueGraphMode.AREA,
            )
            .transformations(seconds_as_time())
            .span(12)
            .height(5)
        )
        .with_panel(
            timeseries.Panel()
            .title("Votes per second")
            .datasource(REDIS)
            .description(
                "HGETALL votes:per_second: votes by the second they were received "
                "(the last hour is kept)."
            )
            .with_target(Redis("hgetall", keys.PER_SECOND).ref_id("A"))
            .transformations(seconds_as_time())
            .unit("short")
            .min(0)
            .fill_opacity(20)
            .legend(legend_bottom())
            .span(24)
            .height(7)
        )
        .with_row(Row("Bands and albums"))
        .with_panel(
            barchart.Panel()
            .title("Votes per band (top 20)")
            .datasource(REDIS)
            .description("HGETALL votes:by_band, largest first.")
            .with_target(Redis("hgetall", keys.BY_BAND).ref_id("A"))
            .transformations(counts_of(keys.BY_BAND, "band", 20))
            .x_field("band")
            .orientation(VizOrientation.HORIZONTAL)
            .show_value(VisibilityMode.AUTO)
            .legend(legend_bottom().show_legend(False))
            .span(14)
            .height(14)
        )
        .with_panel(
            table.Panel()
            .title("Top albums")
            .datasource(REDIS)
            .description("HGETALL votes:by_album, largest first.")
            .with_target(Redis("hgetall", keys.BY_ALBUM).ref_id("A"))
            .transformations(counts_of(keys.BY_ALBUM, "album", 15))
            .span(10)
            .height(14)
        )
        .with_row(Row("Years and ranks"))
        .with_panel(
            barchart.Panel()
            .title("Votes by album year")
            .datasource(REDIS)
            .description("HGETALL votes:by_year, in year order.")
            .with_target(Redis("hgetall", keys.BY_YEAR).ref_id("A"))
            .transformations(
                [
                    to_numbers("Value"),
                    sort_by("Field", desc=False),
                    rename({"Field": "year", "Value": "votes"}),
                ]
            )
            .x_field("year")
            .orientation(VizOrientation.VERTICAL)
            .legend(legend_bottom().show_legend(False))
            .span(14)
            .height(8)
        )
        .with_panel(
            barchart.Panel()
            .title("Votes by rank")
            .datasource(REDIS)
            .description("HGETALL votes:by_rank: the rank voters gave the album.")
            .with_target(Redis("hgetall", keys.BY_RANK).ref_id("A"))
            .transformations(
                [
                    to_numbers("Field", "Value"),
                    sort_by("Field", desc=False),
                    rename({"Field": "rank", "Value": "votes"}),
                ]
            )
            .x_field("rank")
            .orientation(VizOrientation.VERTICAL)
            .legend(legend_bottom().show_legend(False))
            .span(10)
            .height(8)
        )
    )
