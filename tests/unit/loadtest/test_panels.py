"""The soak's panel check: every target of the committed dashboards is found, Grafana's variables
are substituted, and replies are judged OK / EMPTY / ERROR / ALLOWED. No services."""

from __future__ import annotations

from typing import Any

import pytest

from deployments import dashboards
from loadtest import panels


def committed_queries() -> list[panels.PanelQuery]:
    return panels.dashboard_queries(
        panels.load_dashboard(panels.PIPELINE)
    ) + panels.dashboard_queries(panels.load_dashboard(panels.CONTEST))


def targets_in(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (str(panel["title"]), str(target["refId"]))
        for panel in dashboards.panels_of(dashboard)
        for target in panel.get("targets", [])
    ]


@pytest.mark.parametrize("path", [panels.PIPELINE, panels.CONTEST])
def test_every_target_of_every_panel_is_found(path: Any) -> None:
    dashboard = panels.load_dashboard(path)
    found = [(q.panel, q.ref_id) for q in panels.dashboard_queries(dashboard)]
    assert found == targets_in(dashboard)
    # Every panel that is not a row has at least one target.
    titled = {str(p["title"]) for p in dashboards.panels_of(dashboard) if p.get("type") != "row"}
    assert titled == {panel for panel, _ in found}


def test_pipeline_targets_are_promql_and_contest_targets_redis_commands() -> None:
    queries = committed_queries()
    pipeline = [q for q in queries if q.dashboard == "Pipeline"]
    contest = [q for q in queries if q.dashboard == "Contest"]
    assert pipeline and all(q.source == "prometheus" and q.expr for q in pipeline)
    assert contest and all(q.source == "redis-datasource" and q.command and q.key for q in contest)


def test_panels_inside_collapsed_rows_are_found() -> None:
    dashboard = {
        "title": "D",
        "panels": [
            {
                "type": "row",
                "title": "r",
                "collapsed": True,
                "panels": [
                    {
                        "title": "inner",
                        "datasource": {"type": "prometheus"},
                        "targets": [{"refId": "A", "expr": "up"}],
                    }
                ],
            },
        ],
    }
    [query] = panels.dashboard_queries(dashboard)
    assert (query.panel, query.source, query.expr) == ("inner", "prometheus", "up")


def test_numeric_conversions_of_a_contest_panel() -> None:
    by_rank = next(q for q in committed_queries() if q.panel == "Votes by rank")
    assert by_rank.numeric_fields == ("Field", "Value")


def test_grafana_rate_interval_spans_four_scrapes() -> None:
    values = panels.grafana_variables(range_s=600, step_s=5, scrape_interval_s=5)
    assert values["__rate_interval"] == "20s"
    assert values["__interval"] == "5s"
    assert values["__range"] == "600s"
    # A coarser step: $__interval + scrape interval wins.
    assert panels.grafana_variables(3600, 60, 5)["__rate_interval"] == "65s"


def test_every_committed_expression_is_substituted_completely() -> None:
    values = panels.grafana_variables(600, 5, 5)
    for query in committed_queries():
        if query.source == "prometheus":
            run = panels.substitute(query.expr, values)
            assert "$" not in run, (query.panel, run)
    rate = next(q for q in committed_queries() if q.panel.startswith("Votes accepted"))
    assert panels.substitute(rate.expr, values) == (
        "sum by (path) (rate(ray_votes_accepted_total[20s]))"
    )


def test_substitute_forms_and_unknown_variables() -> None:
    values = {"job": "ray", "__interval": "5s"}
    assert panels.substitute('up{job="$job"}[${__interval}]', values) == 'up{job="ray"}[5s]'
    assert panels.substitute('up{job="[[job]]"}', values) == 'up{job="ray"}'
    assert panels.substitute('x{a="${job:raw}"}', values) == 'x{a="ray"}'
    with pytest.raises(KeyError, match=r"\$cluster"):
        panels.substitute('up{cluster="$cluster"}', values)


def test_template_defaults() -> None:
    dashboard = {
        "templating": {
            "list": [
                {"name": "cluster", "current": {"value": "kuberay"}},
                {"name": "deployment", "current": {"value": ["VoteIngress", "VotePersister"]}},
            ]
        }
    }
    assert panels.template_defaults(dashboard) == {
        "cluster": "kuberay",
        "deployment": "VoteIngress|VotePersister",
    }


def prom_query(expr: str = "sum(rate(x[$__rate_interval]))") -> panels.PanelQuery:
    return panels.PanelQuery(
        dashboard="Pipeline", panel="p", ref_id="A", source="prometheus", expr=expr
    )


def test_prometheus_check_ok_empty_nan_and_error() -> None:
    ran: list[tuple[str, float, float, float]] = []
    replies: dict[str, Any] = {
        "sum(rate(x[20s]))": [
            {"metric": {"path": "http"}, "values": [[1, "1.5"], [2, "3"], [3, "NaN"]]}
        ],
        "sum(rate(empty[20s]))": [],
        "sum(rate(nan[20s]))": [{"metric": {}, "values": [[1, "NaN"]]}],
    }

    def query_range(expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        ran.append((expr, start, end, step))
        if expr not in replies:
            raise RuntimeError("bad_data: parse error")
        return replies[expr]

    queries = [
        prom_query(),
        prom_query("sum(rate(empty[$__rate_interval]))"),
        prom_query("sum(rate(nan[$__rate_interval]))"),
        prom_query("broken("),
    ]
    panels.check_prometheus(queries, query_range, start=100, end=700, step_s=5, scrape_interval_s=5)
    ok, empty, nan, error = queries
    assert (ok.status, ok.series, ok.points, ok.peak) == (panels.OK, 1, 2, 3.0)
    assert ok.sample == "max 3, last 3 {path=http}"
    assert ok.query == "sum(rate(x[20s]))"
    assert (empty.status, empty.detail) == (panels.EMPTY, "no series")
    assert (nan.status, nan.detail) == (panels.EMPTY, "1 series, all NaN")
    assert error.status == panels.ERROR and "parse error" in error.detail
    assert all((start, end, step) == (100, 700, 5) for _, start, end, step in ran)


def redis_query(command: str, numeric: tuple[str, ...] = ()) -> panels.PanelQuery:
    return panels.PanelQuery(
        dashboard="Contest",
        panel="p",
        ref_id="A",
        source="redis-datasource",
        command=command,
        key="votes:k",
        numeric_fields=numeric,
    )


class FakeRedis:
    def __init__(self, replies: dict[str, Any]) -> None:
        self.replies = replies
        self.calls: list[tuple[str, ...]] = []

    def execute_command(self, *args: str) -> Any:
        self.calls.append(args)
        reply = self.replies[args[0]]
        if isinstance(reply, Exception):
            raise reply
        return reply


def test_redis_check_runs_the_panels_command_on_its_key() -> None:
    client = FakeRedis(
        {"GET": b"1234", "HLEN": 0, "HGETALL": {b"1700000000": b"12", b"1700000001": b"30"}}
    )
    get, hlen, hgetall = (
        redis_query("get"),
        redis_query("hlen"),
        redis_query("hgetall", ("Field", "Value")),
    )
    panels.check_redis([get, hlen, hgetall], client)
    assert client.calls == [("GET", "votes:k"), ("HLEN", "votes:k"), ("HGETALL", "votes:k")]
    assert (get.status, get.sample) == (panels.OK, "1234")
    assert hlen.status == panels.EMPTY
    assert (hgetall.status, hgetall.points) == (panels.OK, 2)
    assert hgetall.sample == "2 fields; largest 1700000001=30"


def test_redis_check_flags_a_field_the_panel_cannot_convert() -> None:
    query = redis_query("hgetall", ("Field", "Value"))
    panels.check_redis([query], FakeRedis({"HGETALL": {b"Arjona": b"3"}}))
    assert query.status == panels.ERROR
    assert "Field" in query.detail and "Arjona" in query.detail


def test_redis_check_records_errors_and_empty_hashes() -> None:
    failing, empty = redis_query("get"), redis_query("hgetall")
    panels.check_redis([failing], FakeRedis({"GET": ConnectionError("refused")}))
    panels.check_redis([empty], FakeRedis({"HGETALL": {}}))
    assert failing.status == panels.ERROR and "refused" in failing.detail
    assert empty.status == panels.EMPTY


def test_allow_list_only_excuses_empty_targets_it_names() -> None:
    allowed_ident = next(iter(panels.ALLOWED_EMPTY))
    probe_ident = next(iter(panels.NEEDS_PROBES))

    def query(ident: tuple[str, str, str], status: str) -> panels.PanelQuery:
        q = panels.PanelQuery(
            dashboard=ident[0], panel=ident[1], ref_id=ident[2], source="prometheus"
        )
        q.status = status
        return q

    excused = query(allowed_ident, panels.EMPTY)
    broken = query(allowed_ident, panels.ERROR)
    other = query(("Pipeline", "Votes accepted per second, by path", "A"), panels.EMPTY)
    verdict = panels.apply_allow_list([excused, broken, other], probes_ran=True)
    assert excused.status == panels.ALLOWED and "allowed:" in excused.detail
    assert not verdict.passed and len(verdict.failures) == 2

    with_probes = panels.apply_allow_list([query(probe_ident, panels.EMPTY)], probes_ran=True)
    without = panels.apply_allow_list([query(probe_ident, panels.EMPTY)], probes_ran=False)
    assert not with_probes.passed
    assert without.passed and without.allowed


def test_a_probe_fed_target_must_show_the_probes() -> None:
    ident = next(iter(panels.NEEDS_PROBES))

    def query(peak: float) -> panels.PanelQuery:
        q = panels.PanelQuery(
            dashboard=ident[0],
            panel=ident[1],
            ref_id=ident[2],
            source="prometheus",
            status=panels.OK,
            peak=peak,
        )
        return q

    flat, shown = query(0.0), query(3.0)
    verdict = panels.apply_allow_list([flat, shown], probes_ran=True)
    assert flat.status == panels.ZERO and shown.status == panels.OK
    assert not verdict.passed and len(verdict.failures) == 1
    # Without probes a flat line is all there is to see.
    assert panels.apply_allow_list([query(0.0)], probes_ran=False).passed


def test_rare_event_panels_count_a_series_first_value() -> None:
    """The dashboard's rare-event targets subtract the value one window ago, or 0 for a series
    that did not exist then (Ray exports a counter only after its first increment)."""
    for query in committed_queries():
        if query.ident in panels.NEEDS_PROBES or query.ident in panels.ALLOWED_EMPTY:
            assert "offset $__rate_interval or" in query.expr and "* 0)" in query.expr, query.expr
            assert "rate(" not in query.expr


def test_allow_list_names_real_targets() -> None:
    idents = {q.ident for q in committed_queries()}
    for ident in [*panels.ALLOWED_EMPTY, *panels.NEEDS_PROBES]:
        assert ident in idents, ident


def test_markdown_table_has_a_row_per_target() -> None:
    queries = committed_queries()
    table = panels.markdown_table(queries)
    assert len(table.splitlines()) == 2 + len(queries)
    assert all(f"| {q.panel} | {q.ref_id} |" in table for q in queries)
