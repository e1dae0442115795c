"""The soak's pure parts: the Prometheus config, finding Ray's session directory, the RSS growth
evaluation, the capacity and rate plan, the sampling schedule and the reconciliation. No services."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadtest import capacity as cap
from loadtest import prometheus, rss, soak

# ---- Prometheus config -------------------------------------------------------------------------


def test_prometheus_config_scrapes_rays_sd_file_on_loopback(tmp_path: Path) -> None:
    sd_file = tmp_path / "session_x" / "prom_metrics_service_discovery.json"
    config = yaml.safe_load(prometheus.prometheus_config(sd_file, scrape_interval_s=5))
    assert config["global"]["scrape_interval"] == "5s"
    [job] = config["scrape_configs"]
    assert job["job_name"] == "ray"
    assert job["file_sd_configs"] == [{"files": [str(sd_file)], "refresh_interval": "5s"}]
    [relabel] = job["relabel_configs"]
    assert relabel["source_labels"] == ["__address__"]
    assert relabel["target_label"] == "__address__"
    assert relabel["replacement"] == "127.0.0.1:${1}"


def test_relabel_rule_keeps_the_port_and_moves_the_host_to_loopback() -> None:
    import re

    config = yaml.safe_load(prometheus.prometheus_config(Path("/x.json")))
    relabel = config["scrape_configs"][0]["relabel_configs"][0]
    # Prometheus anchors relabel regexes at both ends; $1 is Go's ${1}.
    pattern = re.compile(f"^(?:{relabel['regex']})$")
    for address, port in (
        ("192.0.2.2:44217", "44217"),
        ("127.0.0.1:8080", "8080"),
        ("node-1.example:9100", "9100"),
    ):
        match = pattern.match(address)
        assert match is not None and match.group(1) == port
        assert relabel["replacement"].replace("${1}", match.group(1)) == f"127.0.0.1:{port}"


def test_prometheus_config_refuses_a_zero_interval() -> None:
    with pytest.raises(ValueError, match="scrape interval"):
        prometheus.prometheus_config(Path("/x.json"), scrape_interval_s=0)


def test_private_prometheus_command_is_isolated(tmp_path: Path) -> None:
    prom = prometheus.PrivatePrometheus(
        tmp_path / "sd.json",
        tmp_path / "prom",
        listen="127.0.0.1:20039",
        binary="/usr/bin/prometheus",
    )
    command = prom.command()
    assert command[0] == "/usr/bin/prometheus"
    assert f"--storage.tsdb.path={tmp_path / 'prom' / 'data'}" in command
    assert "--web.listen-address=127.0.0.1:20039" in command
    assert f"--config.file={tmp_path / 'prom' / 'prometheus.yml'}" in command


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["/x/raylet", "--node_ip_address=1.2.3.4", "--session_dir=/tmp/ray/session_a"],
            "/tmp/ray/session_a",
        ),
        (
            ["python", "-u", "dashboard/agent.py", "--session-dir=/tmp/ray/session_b"],
            "/tmp/ray/session_b",
        ),
        (["ray::ServeReplica:votes:VoteIngress"], None),
    ],
)
def test_session_dir_from_cmdline(argv: list[str], expected: str | None) -> None:
    found = prometheus.session_dir_from_cmdline(argv)
    assert (str(found) if found else None) == expected


def test_sd_file_is_in_the_session_dir() -> None:
    assert prometheus.service_discovery_file(Path("/tmp/ray/session_a")) == Path(
        "/tmp/ray/session_a/prom_metrics_service_discovery.json"
    )


# ---- RSS growth ------------------------------------------------------------------------------

MB = rss.MB


def sample(processes: dict[int, tuple[str, float]]) -> rss.Sample:
    return rss.Sample(0.0, {pid: (kind, int(mb * MB)) for pid, (kind, mb) in processes.items()})


def test_growth_compares_the_same_processes_and_flags_over_the_limit() -> None:
    first = sample({1: ("kafka", 500), 2: ("serve_pool_replica", 200), 3: ("serve_proxy", 100)})
    last = sample(
        {
            1: ("kafka", 540),
            2: ("serve_pool_replica", 260),
            3: ("serve_proxy", 100),
            4: ("serve_pool_replica", 400),
        }
    )  # a replica the autoscaler added
    rows = {row.process_class: row for row in rss.growth(first, last, limit_pct=10)}
    assert (rows["kafka"].growth_pct, rows["kafka"].flagged) == (8.0, False)
    pool = rows["serve_pool_replica"]
    assert (pool.processes, pool.start_mb, pool.end_mb, pool.new) == (1, 200.0, 260.0, 1)
    assert (pool.growth_pct, pool.flagged) == (30.0, True)
    assert rows["serve_proxy"].growth_pct == 0.0


def test_growth_with_an_explanation_is_shown_not_flagged() -> None:
    first, last = sample({1: ("kafka", 100)}), sample({1: ("kafka", 150)})
    [row] = rss.growth(first, last, 10, explained={"kafka": "JVM heap grows to -Xmx"})
    assert row.growth_pct == 50.0 and not row.flagged
    assert row.explanation == "JVM heap grows to -Xmx"
    assert "explained" in rss.markdown_table([row], 10)


def test_growth_of_a_class_with_no_common_process() -> None:
    first = sample({1: ("serve_ingress_replica", 100)})
    last = sample({2: ("serve_ingress_replica", 120)})  # replaced
    [row] = rss.growth(first, last)
    assert (row.processes, row.growth_pct, row.flagged, row.new, row.gone) == (0, None, False, 1, 1)


def test_growth_table_marks_findings() -> None:
    rows = rss.growth(sample({1: ("raylet", 100)}), sample({1: ("raylet", 115)}), limit_pct=10)
    table = rss.markdown_table(rows, 10)
    assert "| raylet | 1 | 100.0 | 115.0 | +15.0% | 0 / 0 | FINDING: over 10% |" in table


def test_per_process_lists_every_pid() -> None:
    rows = rss.per_process(
        sample({1: ("a", 10), 2: ("b", 20)}), sample({2: ("b", 25), 3: ("c", 5)})
    )
    rows = [{k: v for k, v in row.items() if k != "title"} for row in rows]
    assert rows == [
        {"pid": 1, "class": "a", "start_mb": 10.0, "end_mb": None},
        {"pid": 2, "class": "b", "start_mb": 20.0, "end_mb": 25.0},
        {"pid": 3, "class": "c", "start_mb": None, "end_mb": 5.0},
    ]


def test_sampler_names_stack_and_extra_pids() -> None:
    import os

    sampler = rss.RssSampler(stack={"self-as-kafka": os.getpid()})
    taken = sampler.sample()
    assert taken.processes[os.getpid()][0] == "self-as-kafka"
    assert taken.processes[os.getpid()][1] > 0


# ---- capacity and the plan -------------------------------------------------------------------


def scenario(name: str, rate: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "votes_per_s": rate, "errors": 0, "reconciled": True} | extra


def test_capacity_is_the_best_single_vote_rate_of_the_shipped_setup() -> None:
    results = {
        "scenarios": [
            scenario("serve_http_single", 67.2),  # Serve's default proxy: not what make run ships
            scenario("serve_http_single[haproxy]", 251.4),
            scenario("serve_grpc_single[haproxy]", 323.1),
            scenario("serve_grpc_batch[haproxy]", 7400.0),  # batches: not single votes
            scenario("plain_http_peer", 1605.1),
        ]
    }
    found = cap.capacity_from_results(results)
    assert found is not None and found.votes_per_s == 323.1
    assert "serve_grpc_single[haproxy]" in found.source
    assert found.rate() == pytest.approx(226.17)


def test_capacity_takes_a_system_scenario_and_skips_failed_runs() -> None:
    results = {
        "scenarios": [
            scenario("system_single", 400.0, errors=3),
            scenario("system_single[http]", 350.0),
            scenario("serve_http_single[haproxy]", 380.0, reconciled=False),
            scenario("serve_grpc_single[haproxy]", None),
        ]
    }
    found = cap.capacity_from_results(results)
    assert found is not None and found.votes_per_s == 350.0


def test_capacity_absent(tmp_path: Path) -> None:
    assert cap.capacity_from_results({}) is None
    assert cap.capacity_from_results({"scenarios": [scenario("persist_x1", 4000)]}) is None
    assert cap.capacity_from_file(tmp_path / "missing.json") is None
    (tmp_path / "broken.json").write_text("{not json")
    assert cap.capacity_from_file(tmp_path / "broken.json") is None
    (tmp_path / "list.json").write_text(json.dumps([1, 2]))
    assert cap.capacity_from_file(tmp_path / "list.json") is None


def test_capacity_from_file(tmp_path: Path) -> None:
    path = tmp_path / "latest.json"
    path.write_text(json.dumps({"scenarios": [scenario("serve_http_single[haproxy]", 100.0)]}))
    found = cap.capacity_from_file(path)
    assert found is not None and found.votes_per_s == 100.0 and str(path) in found.source


def test_users_send_exactly_the_rate_none_faster_than_the_cap() -> None:
    users, each = cap.users_for(113.0, max_per_user=2.0)
    assert users == 57 and each <= 2.0 and users * each == pytest.approx(113.0)
    assert cap.users_for(4.0, 2.0) == (2, 2.0)
    assert cap.users_for(0.0, 2.0) == (0, 0.0)
    with pytest.raises(ValueError, match="positive"):
        cap.users_for(10.0, 0)


def test_plan_splits_between_paths() -> None:
    plan = soak.plan_load(200.0, grpc_share=0.25, max_user_rate=2.0, capacity=None, share=0.7)
    assert (plan.http_rate, plan.grpc_rate) == (150.0, 50.0)
    assert (plan.http_users, plan.grpc_users) == (75, 25)
    with pytest.raises(ValueError, match="gRPC share"):
        cap.split_rate(100.0, 1.5)


def test_locust_env_carries_the_plan() -> None:
    plan = soak.plan_load(10.0, 0.5, 2.0, None, 0.7)
    env = soak.locust_env(plan)
    assert env["VOTES_SOAK_HTTP_USERS"] == "3" and env["VOTES_SOAK_GRPC_USERS"] == "3"
    assert float(env["VOTES_SOAK_HTTP_USER_RATE"]) * 3 == pytest.approx(5.0)


# ---- schedule, arguments, reconciliation -----------------------------------------------------


def test_sample_times_cover_warmup_and_the_end() -> None:
    assert soak.sample_times(600, 60, 30) == [30 * k for k in range(1, 20)] + [597]
    assert soak.sample_times(60, 15, 30) == [15, 30, 57]


def test_default_warmup_and_probes() -> None:
    assert soak.parse_args([]).warmup == 60
    assert soak.parse_args(["--duration", "60"]).warmup == 15
    assert soak.parse_args([]).probes is True
    assert soak.parse_args(["--host", "http://127.0.0.1:8000"]).probes is False
    assert soak.parse_args(["--host", "http://h:8000", "--probes"]).probes is True
    with pytest.raises(SystemExit):
        soak.parse_args(["--share", "1.5"])


def counts(kafka: int, dlq: int, redis: int, mongo: int, results: int | None) -> soak.Counts:
    return soak.Counts(
        kafka_records=kafka,
        dlq_records=dlq,
        redis_total=redis,
        mongo_documents=mongo,
        results_total=results,
    )


def test_reconciliation_is_exact_when_every_store_rose_by_the_accepted_votes() -> None:
    before = counts(10, 0, 10, 10, 10)
    after = counts(10 + 500 + 3, 3, 510, 510, 510)
    rec = soak.reconcile(500, before, after, poison_sent=3)
    assert (rec.kafka, rec.redis, rec.mongo, rec.results, rec.dlq) == (500, 500, 500, 500, 3)
    assert rec.exact


@pytest.mark.parametrize(
    "after",
    [
        counts(503, 3, 499, 500, 500),  # one vote not counted in Redis
        counts(504, 3, 500, 500, 500),  # a duplicate in Kafka
        counts(503, 2, 500, 500, 500),  # a poison record not dead-lettered
        counts(503, 3, 500, 500, 499),  # /results behind
    ],
)
def test_reconciliation_fails_on_any_difference(after: soak.Counts) -> None:
    assert not soak.reconcile(500, counts(0, 0, 0, 0, 0), after, poison_sent=3).exact


def test_errors_count_failures_rejections_doubt_and_retries() -> None:
    outcome = soak.Outcome(
        tally={"accepted": 10, "rejected": 1, "in_doubt": 2, "retries": 3},
        locust={"POST /votes": {"failures": 4}, "grpc Cast": {"failures": 0}},
    )
    assert outcome.errors == 10


def test_process_table_lists_each_pid() -> None:
    rows = rss.per_process(sample({7: ("kafka", 500)}), sample({7: ("kafka", 510), 8: ("x", 1)}))
    table = rss.process_table(rows)
    assert "| 7 | kafka | 500.0 | 510.0 |" in table
    assert "| 8 | x | - | 1.0 |" in table


def test_own_instance_moves_serves_fallback_proxy_ports() -> None:
    """Serve's proxy behind HAProxy listens on 8500/9500 unless told otherwise, and every other
    instance's HAProxy falls back to those ports: ours must not be the one that answers."""
    import shutil

    from serve_app.serve_env import SERVE_ENV

    own = soak.OwnInstance(soak.parse_args(["--fallback-ports", "20134", "20135"]))
    try:
        env = own.serve.extra_env
        assert env["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"] == "20134"
        assert env["RAY_SERVE_FALLBACK_PROXY_GRPC_PORT"] == "20135"
        assert all(env[name] == value for name, value in SERVE_ENV.items())
        assert own.serve.mode == "haproxy"
        assert own.app["redis_url"].endswith("/9")
    finally:
        shutil.rmtree(own.serve.haproxy_dir, ignore_errors=True)
