"""Every query of the generated Grafana dashboards, run for real: PromQL against a Prometheus,
Redis commands against the live Redis. What each panel got goes into the soak report.

    queries = dashboard_queries(load_dashboard(PIPELINE))      # one PanelQuery per target
    check_prometheus(queries, client, start, end, scrape_interval_s=5)
    check_redis(queries, redis_client)

The dashboards are read from the committed JSON (deployments/k8s/grafana/dashboards), exactly what
Grafana loads, not rebuilt from the generator: a stale file would be checked as it is shipped.
Grafana's variables are substituted the way Grafana computes them for a range query
(`grafana_variables`); a `$` left over after substitution is an error, never silently dropped.

A panel passes when every one of its targets returns data. EMPTY and ERROR fail the soak unless
the target is in ALLOWED_EMPTY, each entry with the reason it may be empty in a healthy run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_DIR = ROOT / "deployments" / "k8s" / "grafana" / "dashboards"
PIPELINE = DASHBOARD_DIR / "pipeline.json"
CONTEST = DASHBOARD_DIR / "contest.json"

OK, EMPTY, ERROR, ALLOWED, ZERO = "OK", "EMPTY", "ERROR", "ALLOWED", "ZERO"

# (dashboard title, panel title, refId) -> why the target may return nothing in a healthy soak.
# Keep this short: every entry is a panel nobody checks for real.
ALLOWED_EMPTY: dict[tuple[str, str, str], str] = {
    (
        "Pipeline",
        "Dead-lettered records and store failures",
        "B",
    ): "ray_votes_store_failures_total only moves when MongoDB or Redis fails a write (an outage; "
    "tests/chaos covers it): a healthy soak has none, and Ray exports a counter only once "
    "it was incremented",
}
# Targets that only have data when the soak's probes ran (known-bad votes, undecodable records):
# with probes they must show a value above 0 (the probes' events), without probes (--no-probes,
# or --host without --probes) they may be empty.
NEEDS_PROBES: dict[tuple[str, str, str], str] = {
    (
        "Pipeline",
        "Requests rejected, by path and reason",
        "A",
    ): "ray_votes_rejected_total only moves on a rejected request; the probes send invalid votes",
    (
        "Pipeline",
        "Dead-lettered records and store failures",
        "A",
    ): "ray_votes_dead_lettered_total only moves on an undecodable record; the probes write some",
}


@dataclass
class PanelQuery:
    """One target of one panel, and what running it returned."""

    dashboard: str
    panel: str
    ref_id: str
    source: str  # "prometheus" | "redis-datasource"
    expr: str = ""  # PromQL as in the dashboard (Prometheus)
    command: str = ""  # Redis command (Redis)
    key: str = ""  # Redis key (Redis)
    numeric_fields: tuple[str, ...] = ()  # frame fields the panel converts to numbers (Redis)
    # Filled in by a check:
    query: str = ""  # what was actually run (variables substituted)
    status: str = ""
    series: int = 0
    points: int = 0
    sample: str = ""
    detail: str = ""
    peak: float | None = None  # the largest value any series had (Prometheus)

    @property
    def ident(self) -> tuple[str, str, str]:
        return (self.dashboard, self.panel, self.ref_id)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_dashboard(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text())


def panels_of(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in node.get("panels", []):
        yield panel
        yield from panels_of(panel)


def numeric_conversions(panel: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields a panel's convertFieldType transformations turn into numbers."""
    fields: list[str] = []
    for step in panel.get("transformations") or []:
        if step.get("id") != "convertFieldType":
            continue
        for conversion in (step.get("options") or {}).get("conversions", []):
            if conversion.get("destinationType") == "number":
                fields.append(conversion["targetField"])
    return tuple(dict.fromkeys(fields))


def dashboard_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """One PanelQuery per target of every panel that has targets (rows have none)."""
    title = str(dashboard.get("title", "?"))
    queries = []
    for panel in panels_of(dashboard):
        panel_source = (panel.get("datasource") or {}).get("type", "")
        for target in panel.get("targets") or []:
            source = (target.get("datasource") or {}).get("type") or panel_source
            query = PanelQuery(
                dashboard=title,
                panel=str(panel.get("title", "?")),
                ref_id=str(target.get("refId", "?")),
                source=source,
            )
            if source == "prometheus":
                query.expr = str(target.get("expr", ""))
            elif source == "redis-datasource":
                query.command = str(target.get("command", ""))
                query.key = str(target.get("keyName", ""))
                query.numeric_fields = numeric_conversions(panel)
            queries.append(query)
    return queries


# ---- Grafana's variables -----------------------------------------------------------------------


def duration_text(seconds: float) -> str:
    """A PromQL duration: whole seconds ("20s"), or milliseconds below one second."""
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"


def grafana_variables(
    range_s: float,
    step_s: float,
    scrape_interval_s: float,
    template: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The values Grafana gives its built-in variables for a range query of `range_s` seconds
    at `step_s` resolution against a Prometheus that scrapes every `scrape_interval_s`.

    $__rate_interval is Grafana's documented max($__interval + scrape interval, 4 x scrape
    interval): a rate always spans at least four scrapes.
    """
    rate_interval = max(step_s + scrape_interval_s, 4 * scrape_interval_s)
    values = {
        "__interval": duration_text(step_s),
        "__interval_ms": str(round(step_s * 1000)),
        "__rate_interval": duration_text(rate_interval),
        "__range": duration_text(round(range_s)),
        "__range_s": str(round(range_s)),
        "__range_ms": str(round(range_s * 1000)),
    }
    return values | dict(template or {})


def template_defaults(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Each template variable of the dashboard at its current (default) value."""
    values = {}
    for variable in (dashboard.get("templating") or {}).get("list", []):
        current = (variable.get("current") or {}).get("value")
        if isinstance(current, list):
            current = "|".join(str(v) for v in current)
        if current is not None:
            values[str(variable["name"])] = str(current)
    return values


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """expr with every $name, ${name}, ${name:format} and [[name]] replaced; KeyError naming a
    variable that has no value (the check reports it as an error of that panel)."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in variables:
            raise KeyError(f"no value for Grafana variable ${name}")
        return variables[name]

    return _VARIABLE.sub(value, expr)


# ---- Prometheus ------------------------------------------------------------------------------


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def summarize_matrix(result: list[dict[str, Any]]) -> tuple[int, int, str, float | None]:
    """(series with at least one real number, real points, a sample, the largest value) of a
    range-query matrix."""
    series = points = 0
    best: tuple[float, str] | None = None
    for item in result:
        values = [v for _, text in item.get("values", []) if not math.isnan(v := _number(text))]
        if not values:
            continue
        series += 1
        points += len(values)
        labels = ",".join(f"{k}={v}" for k, v in sorted(item.get("metric", {}).items()))
        peak = max(values)
        if best is None or peak > best[0]:
            best = (
                peak,
                f"max {peak:.4g}, last {values[-1]:.4g}" + (f" {{{labels}}}" if labels else ""),
            )
    return series, points, best[1] if best else "", best[0] if best else None


RangeQuery = Callable[[str, float, float, float], list[dict[str, Any]]]


def check_prometheus(
    queries: Iterable[PanelQuery],
    query_range: RangeQuery,
    start: float,
    end: float,
    step_s: float,
    scrape_interval_s: float,
    template: Mapping[str, str] | None = None,
) -> None:
    """Run every Prometheus target over [start, end] and record what it returned."""
    variables = grafana_variables(end - start, step_s, scrape_interval_s, template)
    for query in queries:
        if query.source != "prometheus":
            continue
        try:
            query.query = substitute(query.expr, variables)
            result = query_range(query.query, start, end, step_s)
        except Exception as exc:  # noqa: BLE001 - every failure is that panel's ERROR
            query.status, query.detail = ERROR, f"{type(exc).__name__}: {exc}"
            continue
        query.series, query.points, query.sample, query.peak = summarize_matrix(result)
        if query.series:
            query.status = OK
        else:
            query.status = EMPTY
            query.detail = f"{len(result)} series, all NaN" if result else "no series"


# ---- Redis -----------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _not_numeric(values: Iterable[Any]) -> list[str]:
    bad = []
    for value in values:
        try:
            float(_text(value))
        except ValueError:
            bad.append(_text(value))
    return bad


def evaluate_redis_reply(query: PanelQuery, reply: Any) -> None:
    """Record status, size and a sample of one Redis reply, checking the panel's conversions."""
    if isinstance(reply, dict):
        query.series = 1 if reply else 0
        query.points = len(reply)
        if not reply:
            query.status, query.detail = EMPTY, "empty hash (or no such key)"
            return
        columns = {"Field": list(reply.keys()), "Value": list(reply.values())}
        for name in query.numeric_fields:
            bad = _not_numeric(columns.get(name, []))
            if bad:
                query.status = ERROR
                query.detail = f"panel converts {name} to numbers; not numbers: {bad[:3]}"
                return
        top = max(reply.items(), key=lambda item: _number(_text(item[1])))
        query.sample = f"{len(reply)} fields; largest {_text(top[0])}={_text(top[1])}"
        query.status = OK
        return
    if reply is None or reply == 0 or reply == b"" or reply == "":
        query.status, query.detail = EMPTY, f"reply {reply!r}"
        return
    query.series, query.points = 1, 1
    query.sample = _text(reply)
    query.status = OK


def check_redis(queries: Iterable[PanelQuery], client: Any) -> None:
    """Run every Redis target's command on its key, as Grafana's redis-datasource would."""
    for query in queries:
        if query.source != "redis-datasource":
            continue
        query.query = f"{query.command.upper()} {query.key}"
        try:
            reply = client.execute_command(query.command.upper(), query.key)
        except Exception as exc:  # noqa: BLE001 - every failure is that panel's ERROR
            query.status, query.detail = ERROR, f"{type(exc).__name__}: {exc}"
            continue
        if query.command.lower() == "hgetall" and isinstance(reply, list):
            reply = dict(zip(reply[::2], reply[1::2], strict=True))  # RESP2 without decoding
        evaluate_redis_reply(query, reply)


# ---- the verdict -----------------------------------------------------------------------------


@dataclass
class Verdict:
    passed: bool
    failures: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)


def apply_allow_list(queries: Iterable[PanelQuery], probes_ran: bool) -> Verdict:
    """Mark allowed EMPTY targets ALLOWED (with their reason); every other non-OK fails, and so
    does a probe-fed target that stayed at 0 although the probes ran (status ZERO)."""
    verdict = Verdict(passed=True)
    for query in queries:
        name = f"{query.dashboard} / {query.panel} / {query.ref_id}"
        if (
            probes_ran
            and query.ident in NEEDS_PROBES
            and query.status == OK
            and not (query.peak or 0) > 0
        ):
            query.status = ZERO
            query.detail = "the probes' events do not show: every value is 0"
        reason = ALLOWED_EMPTY.get(query.ident)
        if reason is None and not probes_ran:
            reason = NEEDS_PROBES.get(query.ident)
        if query.status == EMPTY and reason is not None:
            query.status = ALLOWED
            query.detail = f"{query.detail}; allowed: {reason}"
            verdict.allowed.append(name)
        elif query.status != OK:
            verdict.passed = False
            verdict.failures.append(f"{name}: {query.status} {query.detail}".strip())
    return verdict


def markdown_table(queries: Iterable[PanelQuery]) -> str:
    lines = [
        "| dashboard | panel | ref | query run | status | series | points | sample / detail |",
        "| --- | --- | --- | --- | --- | ---: | ---: | --- |",
    ]
    for q in queries:
        run = (q.query or q.expr or f"{q.command} {q.key}").replace("|", "\\|")
        note = "; ".join(part for part in (q.sample, q.detail) if part).replace("|", "\\|")
        lines.append(
            f"| {q.dashboard} | {q.panel} | {q.ref_id} | `{run}` | {q.status} | "
            f"{q.series} | {q.points} | {note} |"
        )
    return "\n".join(lines)
