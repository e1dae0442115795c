"""The soak's outcome, verdict and report: what counts as an error, why a soak fails, and the
report naming each failure. No services."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest import panels, soak, soak_report, soak_stores


def test_errors_count_failures_rejections_doubt_and_retries() -> None:
    outcome = soak_report.Outcome(
        tally={"accepted": 10, "rejected": 1, "in_doubt": 2, "retries": 3},
        locust={"POST /votes": {"failures": 4}, "grpc Cast": {"failures": 0}},
    )
    assert outcome.errors == 10


def passing_outcome() -> soak_report.Outcome:
    return soak_report.Outcome(
        tally={"accepted": 100},
        reconciliation=soak_stores.Reconciliation(
            accepted=100, kafka=100, redis=100, mongo=100, results=100, dlq=0, poison_sent=0
        ),
        panel_verdict=panels.Verdict(passed=True),
    )


def test_verdict_passes_a_clean_soak_and_names_each_failure() -> None:
    assert soak_report.verdict(passing_outcome()) == []
    outcome = passing_outcome()
    outcome.tally["rejected"] = 2
    outcome.reconciliation = soak_stores.Reconciliation(
        accepted=100, kafka=100, redis=99, mongo=100, results=100, dlq=0, poison_sent=0
    )
    outcome.problems.append("GET /results was still moving before the load")
    failures = soak_report.verdict(outcome)
    assert failures == [
        "GET /results was still moving before the load",
        "2 errors (locust failures, rejected, in doubt, retries)",
        "the reconciliation is not exact",
    ]


def test_report_says_passed_or_failed_with_its_reasons() -> None:
    args = soak.parse_args(["--duration", "60"])
    assert "**PASSED**" in soak_report.report_markdown(args, passing_outcome(), [])
    failed = soak_report.report_markdown(args, soak_report.Outcome(), ["panels not checked"])
    assert "**FAILED**: panels not checked" in failed
    assert soak_report.report_json(args, passing_outcome(), [])["passed"] is True


def test_main_writes_both_reports_and_exits_by_the_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(soak, "soak", lambda args: passing_outcome())
    assert soak.main(["--duration", "60", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / soak_report.REPORT_JSON).read_text())
    assert report["passed"] is True and report["reconciliation"]["exact"] is True
    assert "**PASSED**" in (tmp_path / soak_report.REPORT_MD).read_text()
    monkeypatch.setattr(soak, "soak", lambda args: soak_report.Outcome())
    assert soak.main(["--duration", "60", "--out", str(tmp_path)]) == 1
