"""Load on the real node that reconciles exactly, pod loss, the Ray dashboard (node_lab.py --load).

The project's locustfile (loadtest.run.locust_command) loads the serve Service's ClusterIP from
the namespace; then accepted = distinct vote_ids in Kafka (read_committed) = Redis' total = the
vote log in FerretDB = /results, read by `node_counts.py count` inside the namespace with the lab's
throwaway credentials. --pod-loss force-deletes a worker pod, then the head pod, mid-load.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import lab
import node_app
from node_counts import counts, mismatches, wait_drained

RECOVERY_TIMEOUT_S = 300  # to Ready again, and to the probe accepted
PROBE = {"name": "k8s-lab-probe", "album": "pod loss", "year": 2026, "rank": 1}
# The proof: the run without a pod loss sends at least this many votes.
MIN_STEADY_VOTES = 20_000


def env_value(text: str, key: str) -> str:
    """KEY's value in an env file's text (KEY=VALUE lines)."""
    for line in text.splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].strip()
    raise lab.LabError(f"{key} is not in the env file")


def with_host(url: str, name: str, address: str) -> str:
    """url with the Service name `name` (the pods' short DNS name) replaced by its ClusterIP."""
    if f"@{name}:" not in url:
        raise lab.LabError(f"{name} is not the host of {url.split('@')[-1]}")
    return url.replace(f"@{name}:", f"@{address}:", 1)


def address(service: dict[str, Any], ready_endpoints: list[str]) -> str:
    """The Service's ClusterIP; a headless one's (clusterIP None) first ready pod IP."""
    cluster_ip = str(service["spec"].get("clusterIP", "None"))
    if cluster_ip != "None":
        return cluster_ip
    if not ready_endpoints:
        raise lab.LabError(f"the headless Service {service['metadata']['name']} has no ready pod")
    return ready_endpoints[0]


@dataclass
class Target:
    serve_ip: str
    write_token: str
    ray_token: str
    count_env: dict[str, str]


def target(the_lab: lab.Lab) -> Target:
    slices = the_lab.get_json("endpointslices", "-n", lab.NAMESPACE)["items"]

    def ip(service: str) -> str:
        found = the_lab.get_json("service", service, "-n", lab.NAMESPACE)
        return address(found, node_app.ready_endpoints(slices, service))

    overlay = lab.RUN / "checkout" / "deployments" / "k8s-lab" / "overlay"
    secrets_env = (overlay / "secrets.env").read_text()
    serve_ip = ip(node_app.SERVE_SERVICE)
    count_env = {
        "PYTHONPATH": str(lab.REPO),
        "LAB_KAFKA": f"{ip('votes-kafka-bootstrap')}:9094",
        "LAB_KAFKA_PASSWORD": env_value((overlay / "kafka-user.env").read_text(), "password"),
        "LAB_REDIS_URL": with_host(
            env_value(secrets_env, "VOTES_REDIS_URL"), "votes-redis", ip("votes-redis")
        ),
        "LAB_MONGO_URL": with_host(
            env_value(secrets_env, "VOTES_MONGO_URL"), "votes-mongo", ip("votes-mongo")
        ),
        "LAB_RESULTS_URL": f"http://{serve_ip}:8000/results",
    }
    return Target(
        serve_ip,
        env_value(secrets_env, "VOTES_WRITE_TOKEN"),
        env_value((overlay / "ray-token.env").read_text(), "auth_token"),
        count_env,
    )


def curl(*args: str) -> tuple[str, str]:
    """(body, HTTP status) of curl run in the namespace."""
    proc = subprocess.run(
        lab.in_netns(["curl", "-sS", "-m", "10", "-w", "\n%{http_code}", *args]),
        capture_output=True,
        text=True,
        check=False,
    )
    body, _, status = (proc.stdout + proc.stderr).rpartition("\n")
    return body.strip(), status.strip()


class Probe(threading.Thread):
    """One vote, retried with the same vote_id until accepted: the first acceptance after a loss.
    The vote_id makes the retries count once, so the reconciliation adds exactly 1."""

    def __init__(self, t: Target) -> None:
        super().__init__(daemon=True)
        self.t, self.started = t, time.monotonic()
        self.accepted_after: float | None = None
        self.vote = json.dumps({**PROBE, "vote_id": str(uuid.uuid4())})

    def run(self) -> None:
        while time.monotonic() - self.started < RECOVERY_TIMEOUT_S:
            _, status = curl(
                "-X",
                "POST",
                f"http://{self.t.serve_ip}:8000/votes",
                "-H",
                f"Authorization: Bearer {self.t.write_token}",
                "-H",
                "Content-Type: application/json",
                "-d",
                self.vote,
            )
            if status == "202":
                self.accepted_after = time.monotonic() - self.started
                return
            time.sleep(0.5)


def ray_pods(the_lab: lab.Lab) -> list[dict[str, Any]]:
    return list(the_lab.get_json("pods", "-n", lab.NAMESPACE, "-l", "ray.io/node-type")["items"])


def pod_ids(pods: list[dict[str, Any]], node_type: str) -> dict[str, tuple[str, int]]:
    """name -> (UID, restarts) of the Ray pods of one node type (head or worker)."""
    return {
        p["metadata"]["name"]: (
            p["metadata"]["uid"],
            sum(
                s.get("restartCount", 0) for s in p.get("status", {}).get("containerStatuses") or []
            ),
        )
        for p in pods
        if p["metadata"].get("labels", {}).get("ray.io/node-type") == node_type
    }


def lose_pod(the_lab: lab.Lab, t: Target, node_type: str) -> tuple[float | None, Probe]:
    """Force-delete one Ray pod of node_type; seconds until a new set of Ray pods is Ready."""
    pods = ray_pods(the_lab)
    victim = min(pod_ids(pods, node_type))
    lab.log(f"kubectl delete pod {victim} --grace-period=0 --force")
    the_lab.kubectl(
        "delete", "pod", victim, "-n", lab.NAMESPACE, "--grace-period=0", "--force", quiet=True
    )
    probe = Probe(t)
    probe.start()
    started = time.monotonic()

    def recovered() -> bool:
        now = ray_pods(the_lab)
        names = {p["metadata"]["name"] for p in now}
        ready = len(now) == 1 + node_app.RAY_WORKERS and all(lab.pod_ready(p) for p in now)
        services = the_lab.get_json("rayservice", "-n", lab.NAMESPACE)["items"]
        return ready and victim not in names and all(node_app.rayservice_ready(s) for s in services)

    try:
        the_lab.wait_for(
            f"the Ray pods Ready again after losing {victim}",
            recovered,
            RECOVERY_TIMEOUT_S,
            every_s=1,
        )
    except lab.LabError as exc:
        lab.log(str(exc))
        return None, probe
    return time.monotonic() - started, probe


def run_once(
    the_lab: lab.Lab, t: Target, name: str, args: Any, lose: str | None, seconds: float
) -> list[str]:
    """One locust run of `seconds` (optionally losing a pod mid-load), reconciled exactly."""
    sys.path.insert(0, str(lab.REPO))  # loadtest is a package of the repository
    from loadtest import run as loadtest_run

    lab.section(f"load: {name}")
    out = lab.RUN / f"loadtest-{name}"
    out.mkdir(parents=True, exist_ok=True)
    tally_file = out / "tally.json"
    options = loadtest_run.parse_args(
        [
            "--host",
            f"http://{t.serve_ip}:8000",
            "--grpc-target",
            f"{t.serve_ip}:9000",
            "--users",
            str(args.load_users),
            "--spawn-rate",
            str(args.load_users),
            "--run-time",
            f"{seconds:.0f}s",
            "--think-time",
            "0",
            "--stop-timeout",
            "60",
            "--out",
            str(out),
            "--seed",
            "7",
            "--locust-arg=--vote-deadline=180",
        ]
    )
    before = counts(t.count_env)
    print(f"before: {before}")
    workers_before = pod_ids(ray_pods(the_lab), "worker")
    command = lab.in_netns(loadtest_run.locust_command(options, tally_file))
    env = {**lab.lab_env(), "PYTHONPATH": str(lab.REPO), "VOTES_WRITE_TOKEN": t.write_token}
    lab.log(
        f"locust: {args.load_users} users, {seconds:.0f}s, HTTP and gRPC, "
        f"against {t.serve_ip}:8000 and :9000"
    )
    started = time.monotonic()
    locust = subprocess.Popen(command, cwd=lab.REPO, env=env)
    probe, recovery_s = None, None
    try:
        if lose:
            time.sleep(seconds / 3)  # mid-load: locust is at full speed by then
            recovery_s, probe = lose_pod(the_lab, t, lose)
        code = locust.wait(timeout=seconds + 300)
    finally:
        if locust.poll() is None:
            locust.terminate()
            locust.wait(timeout=30)
    load_s = time.monotonic() - started
    if not tally_file.exists():
        return [f"{name}: locust ended (exit {code}) without its tally"]
    tally = json.loads(tally_file.read_text())
    if probe is not None:
        probe.join(timeout=RECOVERY_TIMEOUT_S)
    probes = 1 if probe is not None and probe.accepted_after is not None else 0
    accepted = int(tally["accepted"]) + probes
    after, drain_s = wait_drained(t.count_env, before, accepted)
    increase = after.minus(before)
    print(f"after:  {after}")
    print(
        f"{name}: locust {load_s:.0f}s, {tally['requests']} requests, {tally['retries']} retries, "
        f"rejected {tally['rejected']}, in doubt {tally['in_doubt']}; drained in {drain_s:.0f}s"
    )
    print(
        f"  accepted {accepted} ({tally['accepted']} by locust + {probes} probe)"
        f" = {accepted / load_s:.0f} votes/s over the run"
    )
    print(f"  Kafka: +{increase.kafka_records} records, +{increase.kafka} distinct vote_ids")
    for key, row in loadtest_run.read_locust_stats(out).items():
        print(f"  {key:40} {row}")
    failures = [f"{name}: {m}" for m in mismatches(accepted, increase, int(tally["in_doubt"]))]
    if lose is None and accepted < MIN_STEADY_VOTES:
        failures.append(
            f"{name}: {accepted} votes, fewer than the {MIN_STEADY_VOTES:,} the proof sends: "
            "raise --steady-seconds"
        )
    print(
        f"  {'EXACT' if not failures else 'MISMATCH'}: accepted {accepted}, Kafka vote_ids "
        f"{increase.kafka}, Redis {increase.redis}, FerretDB {increase.mongo}, "
        f"/results {increase.results}"
    )
    if lose:
        workers_after = pod_ids(ray_pods(the_lab), "worker")
        ready = f"{recovery_s:.1f}s" if recovery_s is not None else "not within the timeout"
        first = f"{probe.accepted_after:.1f}s" if probe and probe.accepted_after else "never"
        print(
            f"  after losing the {lose} pod: Ray pods Ready again in {ready}, "
            f"first probe vote accepted after {first}"
        )
        print(f"  workers before (name: UID, restarts): {workers_before}")
        print(f"  workers after:                        {workers_after}")
        if lose == "head":
            kept = workers_before == workers_after
            print(f"  GCS fault tolerance kept the workers: {'yes' if kept else 'no'}")
        if recovery_s is None:
            failures.append(f"{name}: the Ray pods were not Ready again")
    return failures


def dashboard(the_lab: lab.Lab, t: Target) -> list[str]:
    """GET /api/version of the Ray dashboard through votes-head-svc, without and with the token.
    The Service is headless: its address is looked up each time (a new head has a new pod IP)."""
    lab.section("the Ray dashboard through votes-head-svc")
    slices = the_lab.get_json("endpointslices", "-n", lab.NAMESPACE)["items"]
    head = the_lab.get_json("service", node_app.HEAD_SERVICE, "-n", lab.NAMESPACE)
    head_ip = address(head, node_app.ready_endpoints(slices, node_app.HEAD_SERVICE))
    url = f"http://{head_ip}:8265/api/version"
    body, status = curl(url)
    print(f"GET {url} (no token) -> {status} {body[:200]}")
    body, status = curl(url, "-H", f"Authorization: Bearer {t.ray_token}")
    print(f"GET {url} (Ray token) -> {status} {body[:300]}")
    return [] if status == "200" else [f"the dashboard answered {status}: {body[:200]}"]


def run_load(the_lab: lab.Lab, args: Any) -> list[str]:
    t = target(the_lab)
    failures = dashboard(the_lab, t)
    try:
        failures += run_once(the_lab, t, "steady", args, None, args.steady_seconds)
        if args.pod_loss and not failures:
            failures += run_once(the_lab, t, "worker-loss", args, "worker", args.load_seconds)
            failures += run_once(the_lab, t, "head-loss", args, "head", args.load_seconds)
            failures += dashboard(the_lab, t)
    except lab.LabError:
        node_app.show_failing_containers(the_lab)
        raise
    if failures:
        node_app.show_failing_containers(the_lab)
    return failures
