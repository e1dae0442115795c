"""`make bench-scale`'s pure parts (bench/scenarios/scale, its report, the fleet): efficiency,
CPU shares, tables, load-generator sizing, arguments."""

from __future__ import annotations

from typing import Any

import pytest

from bench.harness.fleet import concurrency_per_process, loadgen_processes, merge
from bench.harness.loadgen import LoadResult
from bench.harness.report.scale import (
    add_efficiency,
    caveats,
    cpu_shares,
    efficiency,
    ingest_table,
    markdown,
    persist_table,
    point_cpu,
    saturation_reading,
)
from bench.scenarios.scale.options import make_plan, parse_args
from bench.scenarios.scale.serving import ingress_actor_options, replicas_up_in_stat

# ---- efficiency and CPU ------------------------------------------------------------------


def test_efficiency_is_rate_over_n_times_the_rate_at_one() -> None:
    assert efficiency({1: 1000.0, 2: 1800.0, 4: 2000.0, 8: 2000.0}) == {
        1: 1.0,
        2: 0.9,
        4: 0.5,
        8: 0.25,
    }


def test_efficiency_is_unknown_without_the_rate_at_one_or_at_n() -> None:
    assert efficiency({1: None, 2: 1800.0}) == {1: None, 2: None}
    assert efficiency({2: 1800.0}) == {2: None}
    assert efficiency({1: 1000.0, 2: None}) == {1: 1.0, 2: None}


def test_add_efficiency_works_per_series() -> None:
    points = [
        {"series": "a", "size": 1, "votes_per_s": 100.0},
        {"series": "a", "size": 2, "votes_per_s": 150.0},
        {"series": "b", "size": 1, "votes_per_s": 10.0},
        {"series": "b", "size": 2, "votes_per_s": 20.0},
    ]
    add_efficiency(points)
    assert [p["efficiency"] for p in points] == [1.0, 0.75, 1.0, 1.0]


def test_cpu_shares_divide_by_every_core_over_the_window() -> None:
    assert cpu_shares({"haproxy": 2.0, "kafka": 1.0}, wall_s=4.0, cores=2) == {
        "haproxy": 0.25,
        "kafka": 0.125,
    }
    with pytest.raises(ValueError, match="positive window"):
        cpu_shares({"kafka": 1.0}, wall_s=0.0, cores=2)


def test_point_cpu_takes_the_median_busy_share_and_mean_parts() -> None:
    runs = [
        {"cpu_share": {"a": 0.5, "b": 0.1}},
        {"cpu_share": {"a": 0.7}},
        {"cpu_share": {"a": 0.3, "b": 0.3}},
        {"failure": "boom"},
    ]
    busy, parts = point_cpu(runs)
    assert busy == 0.6  # the sums are 0.6, 0.7, 0.6
    assert parts == {"a": 0.5, "b": pytest.approx(0.1333, abs=1e-4)}
    assert point_cpu([{"failure": "boom"}]) == (None, {})


# ---- load generators ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpus", "requested", "expected"),
    [(2, None, 1), (1, None, 1), (None, None, 1), (8, None, 7), (64, None, 63), (2, 3, 3)],
)
def test_loadgen_processes_leave_a_core_for_the_servers(
    cpus: int | None, requested: int | None, expected: int
) -> None:
    assert loadgen_processes(cpus, requested) == expected


def test_loadgen_processes_refuse_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        loadgen_processes(4, 0)


def test_concurrency_grows_with_replicas_and_splits_over_processes() -> None:
    assert concurrency_per_process(32, 1, 1) == 32
    assert concurrency_per_process(32, 8, 1) == 256
    assert concurrency_per_process(32, 8, 3) == 86  # 256 / 3, rounded up: never fewer in flight
    assert concurrency_per_process(4, 1, 7) == 1
    with pytest.raises(ValueError, match=">= 1"):
        concurrency_per_process(32, 0, 1)


def test_merge_sums_the_processes_over_their_common_window() -> None:
    a = LoadResult(
        5.0,
        window_requests=10,
        window_votes=10,
        accepted_votes=12,
        accepted_requests=12,
        errors={"timeout": 1},
        error_votes=1,
        latencies_ms=[1.0, 2.0],
    )
    b = LoadResult(
        5.0,
        window_requests=20,
        window_votes=20,
        accepted_votes=25,
        accepted_requests=25,
        errors={"timeout": 2, "http_503": 1},
        error_votes=3,
        latencies_ms=[3.0],
    )
    merged = merge([a, b])
    assert merged.summary()["votes_per_s"] == 6.0
    assert merged.accepted_votes == 37 and merged.error_votes == 4
    assert merged.errors == {"timeout": 3, "http_503": 1}
    assert sorted(merged.latencies_ms) == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="no load results"):
        merge([])


# ---- arguments ---------------------------------------------------------------------------


def test_defaults_read_the_core_count() -> None:
    plan = make_plan(parse_args([]), cores=16)
    assert plan.replicas == [1, 2, 4, 8] and plan.consumers == [1, 2, 3, 4, 5, 6]
    assert plan.loadgen_processes == 15 and plan.cores == 16 and plan.repeats == 3
    quick = make_plan(parse_args(["--quick"]), cores=2)
    assert quick.replicas == [1, 2] and quick.consumers == [1, 2] and quick.repeats == 1
    assert quick.loadgen_processes == 1


def test_lists_are_sorted_and_options_win_over_quick() -> None:
    plan = make_plan(parse_args(["--quick", "--replicas", "4, 1,2", "--repeats", "2"]), cores=2)
    assert plan.replicas == [1, 2, 4] and plan.repeats == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--replicas", "0"], "ingress replicas: 0 is not a count; the least is 1"),
        (["--replicas", "two"], "ingress replicas: 'two' is not a whole number"),
        (["--replicas", "1,,2"], "give a comma-separated list"),
        (["--replicas", "1,2,2"], "names a count twice"),
        (["--replicas", "1,21"], "21 is more than 20"),
        (["--replicas", "2,4"], "--replicas must include 1"),
        (["--consumers", "1,7"], "the topic has 6 partitions"),
        (["--series", "http_single,smoke"], "unknown ['smoke']"),
        (["--repeats", "0"], "repeats: 0 is out of range"),
        (["--duration", "0"], "duration: 0 is out of range (must be more than 0.0)"),
        (["--warmup", "soon"], "warmup: 'soon' is not a number"),
        (["--http-port", "20041"], "--http-port and --grpc-port are both 20041"),
        (["--http-port", "39510"], "port 39510 is inside the port block 39500-395"),
        (["--redis-db", "16"], "not one of Redis's databases"),
        (["--skip-ingest", "--skip-persist"], "leave nothing to measure"),
    ],
)
def test_bad_arguments_get_a_clear_error(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VOTES_BENCH_PORT_BLOCK", raising=False)
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


# ---- Serve settings ----------------------------------------------------------------------


UVLOOP_OFF = {"env_vars": {"RAY_USE_UVLOOP": "0"}}
CONFIG: dict[str, Any] = {
    "applications": [
        {
            "deployments": [
                {
                    "name": "VoteIngress",
                    "ray_actor_options": {"num_cpus": 0.5, "runtime_env": UVLOOP_OFF},
                },
                {"name": "VotePersister", "ray_actor_options": {"num_cpus": 0.25}},
            ]
        }
    ]
}


def test_ingress_reserves_less_cpu_only_when_the_replicas_would_not_fit() -> None:
    assert ingress_actor_options(CONFIG, 4, cpus=2)["num_cpus"] == 0.5
    eight = ingress_actor_options(CONFIG, 8, cpus=2)
    assert eight["num_cpus"] == 0.25
    assert eight["runtime_env"] == UVLOOP_OFF  # kept, not replaced
    assert ingress_actor_options(CONFIG, 3, cpus=1)["num_cpus"] == 0.33
    assert CONFIG["applications"][0]["deployments"][0]["ray_actor_options"]["num_cpus"] == 0.5


def test_replicas_up_counts_replica_servers_not_the_fallback() -> None:
    stat = (
        "# pxname,svname,qcur,status,weight\n"
        "http-votes,FRONTEND,,OPEN,\n"
        "http-votes,SERVE_REPLICA_votes-VoteIngress-a,0,UP,1\n"
        "http-votes,SERVE_REPLICA_votes-VoteIngress-b,0,DOWN,1\n"
        "http-votes,SERVE_PROXY_ACTOR-fallback-x,0,UP,1\n"
        "http-votes,BACKEND,0,UP,1\n"
        "grpc-votes,SERVE_REPLICA_votes-VoteIngress-a,0,UP 1/2,1\n"
    )
    assert replicas_up_in_stat(stat) == {"http-votes": 1, "grpc-votes": 1}
    assert replicas_up_in_stat("") == {}


# ---- the report --------------------------------------------------------------------------


def point(series: str, size: int, rate: float, busy: float, **extra: Any) -> dict[str, Any]:
    return {
        "name": f"{series}_x{size}",
        "series": series,
        "size": size,
        "votes_per_s": rate,
        "votes_per_s_min": rate * 0.9,
        "votes_per_s_max": rate * 1.1,
        "repeats": 3,
        "p99_ms": 40.0,
        "errors": 0,
        "reconciled": True,
        "busy_share": busy,
        "cpu_share": {
            "serve_ingress_replica": busy * 0.6,
            "haproxy": busy * 0.1,
            "kafka": busy * 0.3,
        },
    } | extra


def test_tables_show_rates_spread_efficiency_and_cleanliness() -> None:
    ingest = [
        point("http_single", 1, 1000.0, 0.6),
        point("http_single", 2, 1500.0, 0.97, errors=2, reconciled=False),
    ]
    add_efficiency(ingest)
    table = ingest_table(ingest)
    assert table[2] == "| http_single | 1 | 1,000 | 900-1,100 | 1.00 | 60% | 40 | yes |"
    assert table[3] == (
        "| http_single | 2 | 1,500 | 1,350-1,650 | 0.75 | 97% | 40 | **NO** (2 errors) |"
    )
    persist = [point("persist", 1, 4000.0, 0.5, repeats=1)]
    add_efficiency(persist)
    assert persist_table(persist)[2] == "| 1 | 4,000 | - | 1.00 | 50% | yes |"


def test_the_ingest_table_groups_each_series_by_size() -> None:
    measured = [
        point("http_single", 1, 10.0, 0.5),
        point("http_batch", 1, 900.0, 0.5),
        point("http_single", 2, 20.0, 0.5),
        point("http_batch", 2, 1800.0, 0.5),
    ]
    rows = [line.split(" | ")[:2] for line in ingest_table(measured)[2:]]
    assert rows == [
        ["| http_single", "1"],
        ["| http_single", "2"],
        ["| http_batch", "1"],
        ["| http_batch", "2"],
    ]


def test_the_reading_names_where_saturation_starts_and_who_takes_the_cores() -> None:
    points = [
        point("http_batch", 1, 1000.0, 0.6),
        point("http_batch", 2, 1500.0, 0.95),
        point("http_batch", 4, 1500.0, 0.97),
        point("grpc_single", 1, 100.0, 0.3),
        point("grpc_single", 2, 190.0, 0.5),
    ]
    add_efficiency(points)
    text = "\n".join(saturation_reading(points, cores=2))
    assert (
        "- http_batch: saturated from 2 replicas: at 2 replicas the machine's 2 cores are 95% "
        "busy: this benchmark 95% (ingress replicas 57%, Kafka 28%, HAProxy 10%), other "
        "processes 0%; past it more replicas only share the same cores: efficiency 0.38 at 4."
    ) in text
    assert "- grpc_single: not saturated up to 2 replicas" in text
    persist = [point("persist", 1, 100.0, 0.9)]
    assert saturation_reading(persist, 2, "consumers")[0].startswith(
        "- persist: saturated from 1 consumer: at 1 consumer the machine's"
    )


def test_saturation_by_other_sessions_is_not_read_as_scale_out() -> None:
    loaded = point("grpc_batch", 1, 100.0, 0.99)
    loaded["cpu_share"] = {"serve_ingress_replica": 0.2, "other_processes": 0.79}
    assert saturation_reading([loaded], cores=2) == [
        (
            "- grpc_batch: at 1 replica the machine's 2 cores are 99% busy: this benchmark 20% "
            "(ingress replicas 20%), other processes 79%: saturated by other processes' load, not "
            "by "
            "scale-out; re-run on a quiet machine to read this series."
        )
    ]


def test_caveats_flag_other_sessions_and_busy_load_generators() -> None:
    quiet = point("http_single", 1, 1000.0, 0.5)
    noisy = point("http_single", 2, 1500.0, 0.95)
    noisy["cpu_share"] |= {"other_processes": 0.4, "loadgen": 0.45}
    text = "\n".join(caveats([quiet, noisy], cores=2, loadgen_processes=1))
    assert (
        "- Noise: processes not of this benchmark took 20% or more of the cores at 1 of 2 "
        "points (up to 40%, http_single at 2)"
    ) in text
    assert "- http_single at 2: the 1 load-generator process(es) ran at 90% of a core" in text
    assert caveats([quiet], cores=2, loadgen_processes=1) == []


def test_markdown_states_the_cores_and_both_tables() -> None:
    ingest = [point("http_single", 1, 1000.0, 0.6), point("http_single", 2, 1900.0, 0.9)]
    persist = [point("persist", 1, 4000.0, 0.5), point("persist", 2, 5000.0, 0.95)]
    add_efficiency(ingest)
    add_efficiency(persist)
    data = {
        "ingest": ingest,
        "persist": persist,
        "machine": {
            "cpus": 2,
            "cpu_model": "Test CPU",
            "ray": "2.60.0",
            "python": "3.11.7",
            "when": "2026-01-01T00:00:00+0000",
            "loadavg_before": [0.5, 0, 0],
            "loadavg_after": [1.5, 0, 0],
        },
        "config": {
            "serve_mode": "haproxy",
            "ingress_num_cpus": {"1": 0.5, "2": 0.5, "8": 0.25},
            "loadgen_processes": 1,
            "persist_records": 40000,
            "partitions": 6,
            "plan": {
                "repeats": 3,
                "warmup_s": 3.0,
                "duration_s": 8.0,
                "concurrency_per_replica": 32,
                "batch_concurrency_per_replica": 4,
            },
        },
    }
    text = markdown(data)
    assert "on 2 cores (Test CPU)" in text
    assert "num_cpus per replica: 0.5 at 1, 2 replicas; 0.25 at 8 replicas" in text
    assert "## Ingest only: ingress replicas" in text and "## Persist: consumers" in text
    assert "| http_single | 2 | 1,900 | 1,710-2,090 | 0.95 | 90% | 40 | yes |" in text
    assert "| 2 | 5,000 | 4,500-5,500 | 0.62 | 95% | yes |" in text
    assert "- persist: saturated from 2 consumers" in text
