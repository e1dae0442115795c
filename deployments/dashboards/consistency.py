"""Every panel query held to the code: known metric names, Redis keys and commands only."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from deployments.dashboards.data_sources import REDIS_COMMANDS, allowed_metric_names
from serve_app.stores import redis_counts as keys

_PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, labels and keywords left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group(0)
        following = text[match.end() :].lstrip()
        if following.startswith("(") or name.lower() in _PROMQL_WORDS or name.startswith("$"):
            continue
        if match.start() > 0 and text[match.start() - 1] == "$":  # $__rate_interval etc.
            continue
        names.add(name)
    return names


def panels_of(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panels_of(panel)  # collapsed rows keep their panels inside


def check_dashboard(
    dashboard: Mapping[str, Any],
    metrics: Iterable[str] | None = None,
    redis_keys: Iterable[str] | None = None,
) -> list[str]:
    """Every problem of the dashboard's queries, one line each; [] when all is consistent."""
    allowed = set(metrics) if metrics is not None else allowed_metric_names()
    known_keys = set(redis_keys) if redis_keys is not None else set(keys.ALL_KEYS)
    problems = []
    for panel in panels_of(dashboard):
        title = panel.get("title", "?")
        panel_source = (panel.get("datasource") or {}).get("type")
        for target in panel.get("targets", []):
            kind = (target.get("datasource") or {}).get("type") or panel_source
            where = f"{dashboard.get('title')} / {title} / {target.get('refId')}"
            if kind == "prometheus":
                expr = target.get("expr", "")
                names = promql_metric_names(expr)
                if not names:
                    problems.append(f"{where}: no metric in {expr!r}")
                for name in sorted(names - allowed):
                    problems.append(f"{where}: unknown metric {name!r} in {expr!r}")
            elif kind == "redis-datasource":
                if target.get("keyName") not in known_keys:
                    problems.append(f"{where}: unknown Redis key {target.get('keyName')!r}")
                if target.get("command") not in REDIS_COMMANDS:
                    problems.append(f"{where}: unsupported command {target.get('command')!r}")
            else:
                problems.append(f"{where}: unexpected data source {kind!r}")
    return problems
