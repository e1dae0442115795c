"""The stores on Kubernetes: their logins, sizing, probes, disruption budgets and, for Kafka, the
spread over nodes that lets acks=all survive the loss of one (rendered deployments/k8s).

The Redis ACL users are tried on a real redis-server started with the StatefulSet's own config
file and the ACL file its init container writes:
the app's reads and its Lua script work as `votes-app`, and everything else is refused.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from deployments.manifests.kustomize import parse_env_file
from devkit import k8s_validation as kv
from devkit.net import free_port
from serve_app.domain.counting import CounterUpdate
from serve_app.stores.redis_counts import (
    BY_BAND,
    PER_SECOND,
    RECENT,
    TOTAL,
    RedisCounts,
    read_results_pipeline,
)
from tests.unit.deployments.k8s.test_security import (
    docs,
    kafka,
    of_kind,
    ray_pod_models,
    strimzi_pods,
)

GIB = 1024**3


def container(name: str) -> dict[str, Any]:
    workload = kv.one(docs(), "StatefulSet", name)
    return workload["spec"]["template"]["spec"]["containers"][0]


def _bytes(quantity: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": GIB}
    number, unit = re.fullmatch(r"(\d+)([KMG]i)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * units[unit]


# ---------------------------------------------------------------------------------------------
# Redis ACL users, on a real server
# ---------------------------------------------------------------------------------------------


PASSWORDS = {
    "REDIS_PASSWORD": "ro-test-pw",
    "REDIS_APP_PASSWORD": "app-test-pw",
    "REDIS_ADMIN_PASSWORD": "admin-test-pw",
    "REDIS_GCS_PASSWORD": "gcs-test-pw",
}


def redis_config() -> dict[str, str]:
    return kv.one(docs(), "ConfigMap", "votes-redis-config")["data"]


def write_acl_file(folder: Path) -> Path:
    """users.acl as the init container writes it: its own script, run by sh on the Secret's keys
    mounted as files (here the test's passwords)."""
    secrets = folder / "secrets"
    secrets.mkdir()
    for key, password in PASSWORDS.items():
        (secrets / key).write_text(password)
    script = folder / "users-acl.sh"
    script.write_text(redis_config()["users-acl.sh"])
    acl = folder / "users.acl"
    env = {"PATH": "/usr/bin:/bin", "REDIS_SECRETS": str(secrets), "REDIS_ACL_FILE": str(acl)}
    subprocess.run(["sh", str(script)], env=env, check=True, timeout=30)
    return acl


def redis_server_command(server: str, folder: Path, port: int) -> list[str]:
    """The StatefulSet's redis-server command, its config file from the ConfigMap; the overrides
    only move the server to a private port, folder and ACL file path."""
    spec = container("votes-redis")
    mounts = {m["name"]: m["mountPath"] for m in spec["volumeMounts"]}
    args = list(spec["args"])
    assert args[0] == "redis-server"
    assert args[1:] == [f"{mounts['config']}/redis.conf"]
    acl = write_acl_file(folder)
    # The pod's paths, which redis-server checks as it reads them, moved into the test's folder.
    moved = {"dir": str(folder), "aclfile": str(acl)}
    lines = [
        f"{line.split()[0]} {moved[line.split()[0]]}"
        if line.split()[:1] in [[k] for k in moved]
        else line
        for line in redis_config()["redis.conf"].splitlines()
    ]
    assert sum(line.split()[:1] in [[k] for k in moved] for line in lines) == len(moved)
    config = folder / "redis.conf"
    config.write_text("\n".join(lines) + "\n")
    return [server, str(config), "--save", "", "--port", str(port), "--bind", "127.0.0.1"]


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (make install-stack installs it)")
    data: Path = tmp_path_factory.mktemp("redis-acl")
    port = free_port()
    # Redis 7.0 (Debian's) and 7.4 (the image) both take these rules.
    process = subprocess.Popen(
        redis_server_command(server, data, port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port, password=PASSWORDS["REDIS_PASSWORD"]).ping()
                break
            except redis.ConnectionError:
                assert process.poll() is None, "redis-server refused the StatefulSet's config"
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def test_no_redis_password_is_in_a_containers_arguments_or_environment() -> None:
    """Arguments show in /proc/<pid>/cmdline and the runtime's inspect output, the environment in
    the latter: the passwords reach Redis only as files of the Secret."""
    pod = kv.one(docs(), "StatefulSet", "votes-redis")["spec"]["template"]["spec"]
    for each in [*(pod.get("initContainers") or []), *pod["containers"]]:
        words = [*(each.get("command") or []), *(each.get("args") or [])]
        assert not [w for w in words if "$(" in w], f"{each['name']}: a variable in its arguments"
        secret_env = [e["name"] for e in each.get("env") or [] if "valueFrom" in e]
        assert not secret_env, f"{each['name']}: secrets in its environment: {secret_env}"
    (passwords,) = [v for v in pod["volumes"] if "secret" in v]
    assert {item["key"] for item in passwords["secret"]["items"]} == set(PASSWORDS)


def test_the_acl_script_refuses_a_password_with_white_space(tmp_path: Path) -> None:
    """A space would split the ACL rule: the init container fails and names the key."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for key, password in PASSWORDS.items():
        (secrets / key).write_text(password if key != "REDIS_APP_PASSWORD" else "two words")
    script = tmp_path / "users-acl.sh"
    script.write_text(redis_config()["users-acl.sh"])
    acl = tmp_path / "users.acl"
    env = {"PATH": "/usr/bin:/bin", "REDIS_SECRETS": str(secrets), "REDIS_ACL_FILE": str(acl)}
    proc = subprocess.run(
        ["sh", str(script)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode != 0
    assert "REDIS_APP_PASSWORD" in proc.stderr
    assert not acl.exists()


def app_client(port: int) -> redis.Redis:
    """The app's client, from secrets.env.example's URL shape with the test's password."""
    example = parse_env_file(kv.REPO.k8s / "secrets.env.example")
    url = (
        example["VOTES_REDIS_URL"]
        .replace(example["REDIS_APP_PASSWORD"], PASSWORDS["REDIS_APP_PASSWORD"])
        .replace("votes-redis:6379", f"127.0.0.1:{port}")
    )
    return redis.Redis.from_url(url)


def _update(offset: int) -> CounterUpdate:
    return CounterUpdate(
        partition=0,
        offset=offset,
        counts=True,
        band="Alux Nahual",
        album="Alux Nahual",
        year=1983,
        rank=1,
        second=int(time.time()),
        vote_id=f"v{offset}",
        received_at="2026-01-01T00:00:00.000Z",
    )


def test_the_app_user_runs_everything_the_app_runs(redis_port: int) -> None:
    client = app_client(redis_port)
    assert client.ping()
    counts = RedisCounts(client)  # its Lua script: EVALSHA, then SCRIPT LOAD on the first call
    assert counts.apply("votes", [_update(1), _update(2)]) == 2
    assert counts.apply("votes", [_update(2)]) == 0  # the replay guard reads and writes too
    replies = read_results_pipeline(client).execute()  # type: ignore[attr-defined]
    assert int(replies[0]) == 2
    assert client.lrange(RECENT, 0, 99) and client.hmget(PER_SECOND, ["1", "2"]) == [None, None]


@pytest.mark.parametrize(
    "command",
    [
        ("SET", "votes:total", "0"),  # no plain writes: the Lua script is the way to count
        ("GET", "other"),  # other keys
        ("FLUSHALL",),
        ("CONFIG", "GET", "*"),
        ("KEYS", "*"),
        ("ACL", "LIST"),
        ("CLIENT", "LIST"),
        ("SUBSCRIBE", "x"),
    ],
)
def test_the_app_user_can_do_nothing_else(redis_port: int, command: tuple[str, ...]) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError):
        app_client(redis_port).execute_command(*command)


def test_the_default_user_reads_the_counters_for_grafana_and_nothing_more(
    redis_port: int,
) -> None:
    # Grafana's data source sends AUTH <password> (no user name): the `default` user.
    grafana = redis.Redis(port=redis_port, password=PASSWORDS["REDIS_PASSWORD"])
    assert grafana.ping()
    # The Contest dashboard's commands (deployments/dashboards.py): get, hgetall, hlen.
    grafana.get(TOTAL), grafana.hgetall(BY_BAND), grafana.hlen(PER_SECOND)
    for command in [
        ("HSET", BY_BAND, "x", "1"),
        ("DEL", TOTAL),
        ("FLUSHALL",),
        ("GET", "RAYx"),
        ("CONFIG", "GET", "*"),
        ("EVAL", "return 1", "0"),
    ]:
        with pytest.raises(redis.exceptions.NoPermissionError):
            grafana.execute_command(*command)


def test_the_gcs_user_keeps_to_rays_keys(redis_port: int) -> None:
    gcs = redis.Redis(port=redis_port, username="ray-gcs", password=PASSWORDS["REDIS_GCS_PASSWORD"])
    gcs.hset("RAYsome-cluster-uid@NODE", "k", "v")
    assert gcs.hget("RAYsome-cluster-uid@NODE", "k") == b"v"
    assert gcs.info()
    gcs.delete("RAYsome-cluster-uid@NODE")
    for command in [
        ("GET", TOTAL),
        ("FLUSHALL",),
        ("CONFIG", "GET", "*"),
        ("KEYS", "*"),
        ("SET", "DUMMY", "x"),
        ("GET", "DUMMY"),
    ]:  # DUMMY: Ray's probe may DEL only
        with pytest.raises(redis.exceptions.NoPermissionError):
            gcs.execute_command(*command)


# Ray's own client, as KubeRay's Redis cleanup Job runs it; a failed Redis connect aborts the
# process (RAY_CHECK), hence a process of its own.
RAY_CLEANUP = """
import sys
from ray._private.gcs_utils import cleanup_redis_storage
port, password, namespace = int(sys.argv[1]), sys.argv[2], sys.argv[3]
print(cleanup_redis_storage("127.0.0.1", port, password, False, namespace, username="ray-gcs"))
"""


def test_rays_own_redis_client_connects_and_cleans_up_as_the_gcs_user(redis_port: int) -> None:
    """Every Ray connection to Redis runs `DEL DUMMY` first (redis_context.cc, Connect) and any
    error but MOVED aborts it: `ray start --head` and KubeRay's cleanup Job both need it.
    The server runs redis.yaml's own `user ray-gcs ...` ACL line (the redis_port fixture)."""
    password = PASSWORDS["REDIS_GCS_PASSWORD"]
    gcs = redis.Redis(port=redis_port, username="ray-gcs", password=password)
    namespace = "votes-test-cluster"
    gcs.hset(f"RAY{namespace}@NODE", "node-1", "state")
    proc = subprocess.run(
        [sys.executable, "-c", RAY_CLEANUP, str(redis_port), password, namespace],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    failed = [line for line in proc.stderr.splitlines() if "Check failed" in line]
    assert proc.returncode == 0, f"Ray's Redis client failed as ray-gcs: {failed or proc.stderr}"
    assert proc.stdout.strip().splitlines()[-1] == "True"
    assert not gcs.exists(f"RAY{namespace}@NODE")


def test_only_the_admin_user_administers(redis_port: int) -> None:
    admin = redis.Redis(
        port=redis_port, username="votes-admin", password=PASSWORDS["REDIS_ADMIN_PASSWORD"]
    )
    assert admin.acl_whoami() == "votes-admin"
    assert admin.config_get("appendfsync") == {"appendfsync": "always"}
    assert {"default", "votes-app", "votes-admin", "ray-gcs"} == set(admin.acl_users())
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=redis_port, password="wrong").ping()


def test_redis_memory_is_bounded_below_its_limit() -> None:
    spec = container("votes-redis")
    config = dict(
        line.split(None, 1)
        for line in redis_config()["redis.conf"].splitlines()
        if line.strip() and not line.startswith("#")
    )
    maxmemory = config["maxmemory"]
    assert config["maxmemory-policy"] == "noeviction"
    assert (config["appendonly"], config["appendfsync"]) == ("yes", "always")
    limit = _bytes(spec["resources"]["limits"]["memory"])
    assert int(maxmemory.removesuffix("mb")) * 1024**2 <= 0.7 * limit
    assert spec["resources"]["requests"]["memory"] == spec["resources"]["limits"]["memory"]


# ---------------------------------------------------------------------------------------------
# MongoDB
# ---------------------------------------------------------------------------------------------


def test_wiredtiger_cache_is_sized_to_the_memory_limit() -> None:
    """MongoDB's own rule, 50% of (memory - 1 GiB) and at least 0.25 GiB, on the container's
    limit: left to itself mongod may size the cache from the node's memory."""
    spec = container("votes-mongo")
    args = spec.get("args") or []
    cache_gb = float(args[args.index("--wiredTigerCacheSizeGB") + 1])
    limit = _bytes(spec["resources"]["limits"]["memory"])
    assert cache_gb == max(0.25, (limit - GIB) / 2 / GIB)
    assert spec["resources"]["requests"]["memory"] == spec["resources"]["limits"]["memory"]


def test_mongo_probes_start_no_shell() -> None:
    spec = container("votes-mongo")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "exec" not in spec[probe], f"{probe} runs a process (mongosh is a Node.js shell)"
        assert spec[probe]["tcpSocket"]["port"] in ("mongo", 27017)


def test_mongo_creates_the_apps_least_privilege_user_at_init() -> None:
    mongo = kv.one(docs(), "StatefulSet", "votes-mongo")["spec"]["template"]["spec"]
    (mount,) = [
        m
        for m in mongo["containers"][0]["volumeMounts"]
        if m["mountPath"] == "/docker-entrypoint-initdb.d"
    ]
    (volume,) = [v for v in mongo["volumes"] if v["name"] == mount["name"]]
    script_map = kv.one(docs(), "ConfigMap", volume["configMap"]["name"])
    (script,) = script_map["data"].values()
    assert 'createUser({ user: "votes-app"' in script
    # readWrite on the votes database and no other role (no admin, no userAdmin, no other db).
    assert re.findall(r"role: \"(\w+)\", db: \"(\w+)\"", script) == [("readWrite", "votes")]
    assert "process.env.MONGO_APP_PASSWORD" in script
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in mongo["containers"][0]["env"]}
    assert env["MONGO_APP_PASSWORD"] == "MONGO_APP_PASSWORD"
    assert kv.one(docs(), "ConfigMap", "votes-config")["data"]["VOTES_MONGO_DATABASE"] == "votes"


# ---------------------------------------------------------------------------------------------
# Disruption budgets and Kafka's spread
# ---------------------------------------------------------------------------------------------


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}
    return selector["matchLabels"].items() <= labels.items()


def test_disruption_budgets_cover_ray_workers_redis_and_mongo() -> None:
    budgets = {d["metadata"]["name"]: d["spec"] for d in of_kind("PodDisruptionBudget")}
    ray = ray_pod_models()
    workers = [pod for role, pod in ray.items() if role != "head"]
    (worker_budget,) = [
        b for b in budgets.values() if all(_selects(b["selector"], pod.labels) for pod in workers)
    ]
    assert not _selects(worker_budget["selector"], ray["head"].labels)
    # An integer minAvailable: maxUnavailable or a percentage needs the owner's scale subresource,
    # which a RayCluster lacks (the budget then refuses every eviction; seen in make k8s-lab).
    assert worker_budget == worker_budget | {"minAvailable": 1}
    assert "maxUnavailable" not in worker_budget
    for name in ("votes-redis", "votes-mongo"):
        labels = kv.one(docs(), "StatefulSet", name)["spec"]["template"]["metadata"]["labels"]
        (budget,) = [b for b in budgets.values() if _selects(b["selector"], labels)]
        assert budget["maxUnavailable"] == 0  # one instance: a drain waits for a person
    for budget in budgets.values():
        assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_kafka_has_strimzis_budget_and_no_second_one() -> None:
    """A pod under two PodDisruptionBudgets cannot be evicted: Kafka's is Strimzi's own."""
    for budget in of_kind("PodDisruptionBudget"):
        for pod in strimzi_pods().values():
            assert not _selects(budget["spec"]["selector"], pod.labels), budget["metadata"]["name"]
    assert kafka()["spec"]["kafka"]["template"]["podDisruptionBudget"] == {"maxUnavailable": 1}


def test_acks_all_survives_the_loss_of_one_node() -> None:
    """3 Kafka nodes on 3 different nodes (required anti-affinity), 3 replicas of every topic and
    min.insync.replicas 2: one node lost leaves 2 replicas in sync and 2 of 3 KRaft voters."""
    pool = kv.one(docs(), "KafkaNodePool")["spec"]
    assert pool["replicas"] >= 3 and {"broker", "controller"} <= set(pool["roles"])
    anti = pool["template"]["pod"]["affinity"]["podAntiAffinity"]
    (term,) = anti["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert _selects(term["labelSelector"], strimzi_pods()["kafka"].labels)
    config = kafka()["spec"]["kafka"]["config"]
    for topic in of_kind("KafkaTopic"):
        replicas = topic["spec"]["replicas"]
        min_isr = int(
            topic["spec"]["config"].get("min.insync.replicas", config["min.insync.replicas"])
        )
        assert replicas <= pool["replicas"]
        assert replicas - 1 >= min_isr >= 2, topic["metadata"]["name"]
    assert config["offsets.topic.replication.factor"] - 1 >= config["min.insync.replicas"]
    assert config["default.replication.factor"] - 1 >= config["min.insync.replicas"]
