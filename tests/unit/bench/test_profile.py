"""bench.harness.profile folds py-spy's raw stacks into own time and layers (no py-spy needed
here)."""

from __future__ import annotations

from bench.harness.env import ROOT
from bench.harness.profile import fold, markdown

RAW = [
    # root first, leaf last, then the sample count (py-spy --format raw)
    (
        f"_run (/usr/lib/python3.11/asyncio/events.py:80);cast ({ROOT}/serve_app/ingest.py:200);"
        "validate_python (/x/site-packages/pydantic/main.py:10) 6"
    ),
    f"_run (/usr/lib/python3.11/asyncio/events.py:80);send ({ROOT}/serve_app/producer.py:120) 3",
    (
        "_run (/usr/lib/python3.11/asyncio/events.py:80);select "
        "(/usr/lib/python3.11/selectors.py:468) 1"
    ),
    "not a stack line",
]


def test_own_time_and_layers_add_up() -> None:
    summary = fold(RAW).summary()
    assert summary["samples"] == 10
    assert summary["top_own"][0] == {"function": "validate_python (pydantic/main.py)", "share": 0.6}
    assert summary["layers"] == {
        "pydantic": 0.6,
        "ours (serve_app)": 0.3,
        "asyncio / uvloop (the event loop)": 0.1,
    }


def test_the_report_section_names_scenario_and_process() -> None:
    scenario = {
        "name": "serve_http_single[haproxy]",
        "profile": {"serve_ingress_replica": fold(RAW).summary()},
    }
    text = "\n".join(markdown([scenario, {"name": "kafka_producer_raw"}]))
    assert "serve_http_single[haproxy], serve_ingress_replica" in text and "pydantic 60%" in text


def test_inclusive_time_counts_a_function_once_per_sample() -> None:
    folded = fold(RAW)
    ours = folded.inclusive_summary("serve_app/")
    assert ours == [
        {"function": "cast (serve_app/ingest.py)", "share": 0.6},
        {"function": "send (serve_app/producer.py)", "share": 0.3},
    ]
    assert folded.inclusive_summary("asyncio/") == [
        {"function": "_run (asyncio/events.py)", "share": 1.0}
    ]
