"""What the soak found (its Outcome), whether it passed, and its reports: soak-report.{md,json}
and the summary printed at the end."""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest import panels, rss
from loadtest.capacity import LoadPlan
from loadtest.soak_probes import Probes
from loadtest.soak_stores import Reconciliation

REPORT_MD = "soak-report.md"
REPORT_JSON = "soak-report.json"


@dataclass
class Outcome:
    plan: LoadPlan | None = None
    tally: dict[str, int] = field(default_factory=dict)
    locust: dict[str, Any] = field(default_factory=dict)
    locust_exit: int | None = None
    probes: Probes | None = None
    reconciliation: Reconciliation | None = None
    drain_s: float = 0.0
    rss_rows: list[rss.GrowthRow] = field(default_factory=list)
    rss_processes: list[dict[str, Any]] = field(default_factory=list)
    progress: list[dict[str, Any]] = field(default_factory=list)
    queries: list[panels.PanelQuery] = field(default_factory=list)
    panel_verdict: panels.Verdict | None = None
    prometheus: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    load_window: tuple[float, float] = (0.0, 0.0)
    diagnosis: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        failures = sum(int(s.get("failures", 0)) for s in self.locust.values())
        return (
            failures
            + self.tally.get("rejected", 0)
            + self.tally.get("in_doubt", 0)
            + self.tally.get("retries", 0)
        )


def verdict(outcome: Outcome) -> list[str]:
    """Why the soak failed, one line each; [] when it passed."""
    failed = list(outcome.problems)
    if outcome.errors:
        failed.append(f"{outcome.errors} errors (locust failures, rejected, in doubt, retries)")
    if outcome.reconciliation is None or not outcome.reconciliation.exact:
        failed.append("the reconciliation is not exact")
    if outcome.probes is not None and not outcome.probes.as_expected:
        failed.append("the probes were not answered as expected (422 / INVALID_ARGUMENT)")
    if outcome.panel_verdict is None or not outcome.panel_verdict.passed:
        failed += (
            outcome.panel_verdict.failures if outcome.panel_verdict else ["panels not checked"]
        )
    failed += [
        f"RSS of {row.process_class} grew {row.growth_pct}%"
        for row in outcome.rss_rows
        if row.flagged
    ]
    return failed


def report_json(args: argparse.Namespace, outcome: Outcome, failures: list[str]) -> dict[str, Any]:
    return {
        "passed": not failures,
        "failures": failures,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "host": args.host,
        "plan": outcome.plan.as_dict() if outcome.plan else None,
        "tally": outcome.tally,
        "locust": outcome.locust,
        "locust_exit": outcome.locust_exit,
        "errors": outcome.errors,
        "probes": outcome.probes.__dict__ if outcome.probes else None,
        "reconciliation": outcome.reconciliation.as_dict() if outcome.reconciliation else None,
        "drain_s": round(outcome.drain_s, 1),
        "diagnosis": outcome.diagnosis,
        "rss": {
            "limit_pct": args.rss_limit,
            "classes": [r.as_dict() for r in outcome.rss_rows],
            "processes": outcome.rss_processes,
        },
        "progress": outcome.progress,
        "prometheus": outcome.prometheus,
        "panels": [q.as_dict() for q in outcome.queries],
        "panels_allowed_empty": outcome.panel_verdict.allowed if outcome.panel_verdict else [],
        "machine_loadavg": os.getloadavg(),
    }


def report_markdown(args: argparse.Namespace, outcome: Outcome, failures: list[str]) -> str:
    plan, rec = outcome.plan, outcome.reconciliation
    lines = [
        f"# Soak report ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"**{'PASSED' if not failures else 'FAILED'}**"
        + ("" if not failures else ": " + "; ".join(failures)),
        "",
    ]
    if plan is not None:
        source = plan.capacity.source if plan.capacity else "--rate"
        lines += [
            f"Load: {plan.rate:.1f} votes/s for {args.duration:.0f} s (HTTP "
            f"{plan.http_rate:.1f}/s by {plan.http_users} users, gRPC {plan.grpc_rate:.1f}/s "
            f"by {plan.grpc_users} users), single votes; rate from {source}"
            + (f" x {plan.share:g}" if plan.capacity else "")
            + ".",
            "",
        ]
    lines += ["## Reconciliation", ""]
    if rec is not None:
        lines += [
            (
                "| votes accepted (locust) | Kafka records | Redis votes:total | MongoDB "
                "documents | GET /results | DLQ records / poison sent | exact |"
            ),
            "| ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            (
                f"| {rec.accepted} | {rec.kafka} | {rec.redis} | {rec.mongo} | {rec.results} | "
                f"{rec.dlq} / {rec.poison_sent} | {'yes' if rec.exact else 'NO'} |"
            ),
            "",
            (
                f"Errors: {outcome.errors} (tally {outcome.tally}); drained in "
                f"{outcome.drain_s:.1f} s."
            ),
            "",
        ]
    if outcome.probes is not None:
        p = outcome.probes
        lines += [
            (
                f"Probes: HTTP invalid votes answered {p.http_answers}, gRPC {p.grpc_answers}, "
                f"{p.poison_sent} undecodable records written to the topic."
            ),
            "",
        ]
    lines += [
        f"## RSS per process class (after {args.warmup:.0f} s of warm-up, and at the end)",
        "",
        rss.markdown_table(outcome.rss_rows, args.rss_limit),
        "",
        "<details><summary>RSS per process</summary>",
        "",
        rss.process_table(outcome.rss_processes),
        "",
        "</details>",
        "",
        "## Dashboard panels",
        "",
        (
            f"Prometheus {outcome.prometheus.get('url')} scraping "
            f"{outcome.prometheus.get('targets')} (from {outcome.prometheus.get('sd_file')}) "
            f"every {outcome.prometheus.get('scrape_interval_s')} s; PromQL run as a range "
            "query over the load's window; Redis commands against the app's database."
        ),
        "",
        panels.markdown_table(outcome.queries),
        "",
    ]
    if outcome.prometheus.get("accepted_total_by_path"):
        lines += [
            (
                f"Prometheus sum by (path) (ray_votes_accepted_total) at the end: "
                f"{outcome.prometheus['accepted_total_by_path']}"
            ),
            "",
        ]
    lines += [
        "## Progress",
        "",
        "| elapsed (s) | sent | errors | lag | RSS (MB) |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {p['elapsed_s']} | {p['sent']} | {p['errors']} | {p['lag']} | {p['rss_mb']} |"
        for p in outcome.progress
    ]
    return "\n".join(lines) + "\n"


def write_reports(
    args: argparse.Namespace, outcome: Outcome, failures: list[str]
) -> tuple[Path, Path]:
    """soak-report.md and soak-report.json in --out; returns their paths."""
    md, js = args.out / REPORT_MD, args.out / REPORT_JSON
    js.write_text(json.dumps(report_json(args, outcome, failures), indent=2, default=str) + "\n")
    md.write_text(report_markdown(args, outcome, failures))
    return md, js


def print_summary(outcome: Outcome, failures: list[str], rss_limit: float) -> None:
    print()
    print(panels.markdown_table(outcome.queries))
    print()
    print(rss.markdown_table(outcome.rss_rows, rss_limit))
    if outcome.reconciliation is not None:
        print()
        print(f"reconciliation: {outcome.reconciliation.as_dict()}")
    print()
    print("SOAK PASSED" if not failures else "SOAK FAILED:\n  " + "\n  ".join(failures))
