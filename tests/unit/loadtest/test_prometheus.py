"""The soak's private Prometheus: its config scrapes Ray's service-discovery file on loopback,
its command is isolated, and Ray's session directory is found from a process's command line.
No services."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from loadtest import prometheus


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
