"""The load phase of the real node (deployments/k8s-lab/node_load.py): its pure parts.

The reconciliation's arithmetic (every store's increase equals the votes accepted, none in
doubt), the parsing of what `node_load.py count` prints, the env files' values, the stores'
URLs pointed at ClusterIPs, and the Ray pods' identities compared across a pod loss.
"""

from __future__ import annotations

import lab
import node_load
import pytest
from node_load import Counts


def test_increases_are_after_minus_before() -> None:
    before = Counts(kafka=1, redis=1, mongo=1, results=1, kafka_records=1)
    after = Counts(kafka=20_001, redis=20_002, mongo=20_001, results=20_002, kafka_records=20_005)
    assert after.minus(before) == Counts(20_000, 20_001, 20_000, 20_001, 20_004)


def test_exact_when_every_store_rose_by_the_accepted_votes() -> None:
    # Records beyond the distinct vote_ids are retries that reached Kafka twice: not a mismatch.
    assert node_load.mismatches(500, Counts(500, 500, 500, 500, 503), in_doubt=0) == []


def test_each_store_off_by_any_amount_is_named_with_its_difference() -> None:
    problems = node_load.mismatches(500, Counts(500, 499, 501, 500, 500), in_doubt=0)
    assert problems == [
        "redis increased by 499, accepted 500 (difference -1)",
        "mongo increased by 501, accepted 500 (difference +1)",
    ]


def test_votes_in_doubt_make_it_not_exact_even_when_the_counts_agree() -> None:
    problems = node_load.mismatches(500, Counts(500, 500, 500, 500, 500), in_doubt=2)
    assert problems == ["2 votes in doubt (given up or cut off): not exact by design"]


def test_the_counts_are_the_last_printed_line() -> None:
    stdout = 'a warning\n{"kafka": 2, "redis": 2, "mongo": 2, "results": 2, "kafka_records": 3}\n\n'
    assert node_load.parse_counts(stdout) == Counts(
        kafka=2, redis=2, mongo=2, results=2, kafka_records=3
    )


def test_a_count_missing_from_the_line_is_an_error() -> None:
    with pytest.raises(KeyError, match="kafka_records"):
        node_load.parse_counts('{"kafka": 2, "redis": 2, "mongo": 2, "results": 2}')


def test_nothing_printed_is_a_lab_error() -> None:
    with pytest.raises(lab.LabError, match="printed nothing"):
        node_load.parse_counts("\n")


def test_env_value_is_the_text_after_the_first_equals_sign() -> None:
    text = "# comment\nVOTES_WRITE_TOKEN=abc=def\nOTHER=1\n"
    assert node_load.env_value(text, "VOTES_WRITE_TOKEN") == "abc=def"
    with pytest.raises(lab.LabError, match="MISSING"):
        node_load.env_value(text, "MISSING")


def test_a_store_url_gets_the_cluster_ip_in_place_of_the_service_name() -> None:
    url = "redis://votes-app:dummy@votes-redis:6379/0"
    assert (
        node_load.with_host(url, "votes-redis", "10.96.0.5")
        == "redis://votes-app:dummy@10.96.0.5:6379/0"
    )
    with pytest.raises(lab.LabError, match="votes-mongo is not the host"):
        node_load.with_host(url, "votes-mongo", "10.96.0.6")


def pod(name: str, node_type: str, uid: str, restarts: list[int]) -> dict[str, object]:
    return {
        "metadata": {"name": name, "uid": uid, "labels": {"ray.io/node-type": node_type}},
        "status": {"containerStatuses": [{"restartCount": r} for r in restarts]},
    }


def test_pod_ids_are_uid_and_restarts_of_one_node_type() -> None:
    pods = [
        pod("h", "head", "u0", [0]),
        pod("w1", "worker", "u1", [0, 1]),
        pod("w2", "worker", "u2", [2]),
    ]
    assert node_load.pod_ids(pods, "worker") == {"w1": ("u1", 1), "w2": ("u2", 2)}
    assert node_load.pod_ids(pods, "head") == {"h": ("u0", 0)}
    restarted = [pod("w1", "worker", "u1", [1, 1]), pod("w2", "worker", "u2", [2])]
    assert node_load.pod_ids(restarted, "worker") != node_load.pod_ids(pods, "worker")


def test_a_service_address_is_its_cluster_ip_or_a_headless_ones_ready_pod() -> None:
    def service(cluster_ip: str) -> dict[str, object]:
        return {"metadata": {"name": "votes-redis"}, "spec": {"clusterIP": cluster_ip}}

    assert node_load.address(service("10.96.0.7"), ["10.244.0.5"]) == "10.96.0.7"
    assert node_load.address(service("None"), ["10.244.0.5", "10.244.0.6"]) == "10.244.0.5"
    with pytest.raises(lab.LabError, match="headless Service votes-redis has no ready pod"):
        node_load.address(service("None"), [])
