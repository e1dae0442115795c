"""CPU per single vote of the ingress replica, over HTTP and gRPC, in the mode `make run` uses.

    VOTES_BENCH_PORT_BLOCK=39200 .venv/bin/python -m bench.tools.ingress_cost \\
        --http-port 20010 --grpc-port 20011 --redis-db 11 --seconds 15 [--profile]

Starts one Serve instance (bench.harness.serve_instance.ServeInstance, HAProxy direct ingress with
the environment of serve_app.serve_env, as `make run`), by default `bench.apps:build_ingest_only`
(VoteIngress as shipped, the pool idle), on topics of its own. For each protocol it warms up,
then runs `--seconds` of single votes at `--concurrency` in flight and prints the CPU per accepted
vote of each process class (bench.harness.cpu.CpuMeter: the ingress replica, Kafka, HAProxy, Ray's
daemons, ...). CPU per vote is the measure to compare on a shared machine, not votes/s.
`--profile` then samples the replica with py-spy for another window of the same load and prints
the functions with the most own time, the functions in chosen files (`--inclusive`: ours, Ray's
metrics, FastAPI, Starlette) with the most inclusive time, and the share by layer
(bench/harness/profile.py). Each window also gives the replica's CPU by thread name (/proc): "main"
is
Ray's core worker thread, "ray::IDLE" the Python threads (the event loop, thread pools),
"kafka-poller" the producer's delivery-report thread, "rdk:*" librdkafka's.

    --import-path MODULE:BUILDER   another builder for config.yaml, e.g. Serve's floor:
                                   bench.apps:build_noop (a no-op VoteIngress, the same routes)
    --env NAME=VALUE               an extra Ray/Serve environment variable (A/B of a switch)
    --replica-env NAME=VALUE       an environment variable of the VoteIngress replicas only, over
                                   config.yaml's runtime_env (RAY_USE_UVLOOP=1)
    --app-arg NAME=VALUE           an extra application arg (A/B of a setting: kafka_linger_ms=5)
    --json PATH                    the results, appended as one JSON line per run

To compare two versions of the code, run it alternately from two trees (the replicas import
serve_app from the directory `serve run` starts in, which is this file's repository):
`git archive HEAD | tar -x -C /tmp/votes-a`, then `cd /tmp/votes-a && <checkout>/.venv/bin/python
-m bench.tools.ingress_cost ...` against `cd <checkout> && ...`. Investigation and numbers:
docs/decisions/0013-ingress-hot-path.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.harness import loadgen
from bench.harness.cpu import CpuMeter, classify, stack_pids, thread_cpu, thread_delta
from bench.harness.env import MONGO_URL, REDIS_HOST, REDIS_PORT, ROOT, log
from bench.harness.payloads import Bodies, GrpcMessages
from bench.harness.processes import session_members
from bench.harness.profile import Profiler, fold
from bench.harness.serve_instance import ServeInstance
from devkit.kafka import KAFKA, create_topics, delete_topics
from devkit.kafka import readable_records as kafka_records
from devkit.names import RunNames
from serve_app.serve_env import SERVE_ENV

DEFAULT_IMPORT_PATH = "bench.apps:build_ingest_only"
# Serve gives its proxy 5 s (x3) to report ready; on a loaded 2-core machine HAProxy's manager can
# take longer and the start fails. Startup only: the request path does not read these.
PATIENT_STARTUP_ENV = {
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "30",
    "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "30",
}
# Classes of process shown per vote; the rest are summed as "rest".
SHOWN = (
    "serve_ingress_replica",
    "kafka",
    "haproxy",
    "ray_system",
    "serve_controller",
    "serve_pool_replica",
    "loadgen_and_bench",
    "other_processes",
)


def parse_pairs(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"{what} {item!r}: expected NAME=VALUE")
        pairs[name] = value
    return pairs


def replica_pids(session_pid: int) -> list[int]:
    return [
        proc.pid
        for proc in session_members(session_pid)
        if classify(proc) == "serve_ingress_replica"
    ]


def run_load(
    instance: ServeInstance, protocol: str, seconds: float, concurrency: int, tag: str
) -> loadgen.LoadResult:
    if protocol == "http":
        return loadgen.run_http(
            "127.0.0.1",
            instance.http_port,
            "/votes",
            Bodies("single", tag),
            concurrency=concurrency,
            warmup_s=0,
            duration_s=seconds,
        )
    return loadgen.run_grpc(
        instance.grpc_target,
        GrpcMessages("single", tag),
        concurrency=concurrency,
        warmup_s=0,
        duration_s=seconds,
    )


def measure(
    instance: ServeInstance, protocol: str, seconds: float, concurrency: int, tag: str, topic: str
) -> dict[str, Any]:
    """One measured window: CPU of every process class per accepted vote."""
    assert instance.proc is not None
    kafka_pid = stack_pids().get("kafka")
    meter = CpuMeter({kafka_pid: "kafka"} if kafka_pid else {}, [instance.proc.pid])
    records_before = kafka_records(topic)
    load_before = os.getloadavg()[0]
    replicas = replica_pids(instance.proc.pid)
    threads_before = thread_cpu(replicas)
    meter.start()
    result = run_load(instance, protocol, seconds, concurrency, tag)
    cpu = meter.stop()
    threads = thread_delta(threads_before, thread_cpu(replicas))
    accepted = result.accepted_votes
    per_vote = {part: round(1e6 * s / accepted, 1) for part, s in cpu.items()} if accepted else {}
    per_thread = (
        {
            group: round(1e6 * s / accepted, 1)
            for group, s in sorted(threads.items(), key=lambda item: -item[1])
            if s > 0
        }
        if accepted
        else {}
    )
    return {
        "protocol": protocol,
        "seconds": seconds,
        "concurrency": concurrency,
        "accepted": accepted,
        "errors": dict(result.errors),
        "kafka_records": kafka_records(topic) - records_before,
        "votes_per_s": round(accepted / meter.wall_s, 1),
        "p50_ms": result.summary()["p50_ms"],
        "p99_ms": result.summary()["p99_ms"],
        "loadavg_1m_before": round(load_before, 2),
        "cpu_us_per_vote": per_vote,
        "replica_threads_us_per_vote": per_thread,
    }


def profile(
    instance: ServeInstance,
    protocol: str,
    seconds: float,
    concurrency: int,
    tag: str,
    out_dir: Path,
    inclusive: list[str],
) -> dict[str, Any]:
    assert instance.proc is not None
    profiler = Profiler(out_dir, f"ingress_cost_{protocol}", instance.proc.pid, seconds)
    with profiler:
        run_load(instance, protocol, seconds, concurrency, tag)
    summary = profiler.result.get("serve_ingress_replica", {})
    raw = summary.get("raw")
    if raw:
        path = Path(raw) if Path(raw).is_absolute() else ROOT / raw
        with path.open(errors="replace") as lines:
            folded = fold(lines)
        summary["inclusive"] = {
            part: folded.inclusive_summary(part, top=15 if part == "serve_app/" else 5)
            for part in inclusive
        }
    return summary


def print_row(row: dict[str, Any]) -> None:
    cpu = row["cpu_us_per_vote"]
    rest = round(sum(v for k, v in cpu.items() if k not in SHOWN), 1)
    cells = " ".join(f"{cpu.get(part, 0.0):>9.1f}" for part in SHOWN)
    print(
        f"{row['protocol']:5} {row['accepted']:>7} {row['votes_per_s']:>8} {cells} {rest:>7.1f}"
        f"  errors {sum(row['errors'].values())}, kafka records {row['kafka_records']}",
        flush=True,
    )
    threads = row["replica_threads_us_per_vote"]
    print(
        "      replica threads: "
        + ", ".join(f"{name} {us:.0f}" for name, us in threads.items() if us >= 1),
        flush=True,
    )


def print_header() -> None:
    names = " ".join(f"{part[:9]:>9}" for part in SHOWN)
    print(
        f"{'proto':5} {'votes':>7} {'votes/s':>8} {names} {'rest':>7}   (CPU µs per vote)",
        flush=True,
    )


def print_profile(protocol: str, summary: dict[str, Any]) -> None:
    if not summary.get("samples"):
        print(f"profile {protocol}: no samples", flush=True)
        return
    print(f"\nprofile {protocol}, ingress replica, {summary['samples']} samples:", flush=True)
    print(
        "  layers: "
        + ", ".join(
            f"{name} {share:.0%}" for name, share in summary["layers"].items() if share >= 0.01
        )
    )
    print("  own time:")
    for row in summary["top_own"]:
        print(f"    {row['share']:6.1%}  {row['function']}")
    for part, rows in summary.get("inclusive", {}).items():
        print(f"  inclusive, functions in {part}:")
        for row in rows:
            print(f"    {row['share']:6.1%}  {row['function']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=9000)
    parser.add_argument(
        "--redis-db", type=int, default=13, help="Redis database of the app (default 13)"
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="measured window per protocol")
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--protocols", default="http,grpc")
    parser.add_argument(
        "--repeats", type=int, default=1, help="measured windows per protocol, alternating"
    )
    parser.add_argument("--import-path", default=DEFAULT_IMPORT_PATH)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--replica-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--app-arg", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--profile", action="store_true", help="then sample the replica with py-spy"
    )
    parser.add_argument(
        "--inclusive",
        default="serve_app/,ray/util/metrics.py,fastapi/,starlette/",
        help="with --profile: list functions in files matching these, by inclusive time",
    )
    parser.add_argument("--label", default="", help="a name for this run in the output")
    parser.add_argument("--json", type=Path, help="append the results to this file (JSON lines)")
    args = parser.parse_args()
    protocols = [p for p in args.protocols.split(",") if p]
    if unknown := set(protocols) - {"http", "grpc"}:
        raise SystemExit(f"--protocols: unknown {sorted(unknown)}; known: http, grpc")
    if args.seconds <= 0 or args.seconds > 120:
        raise SystemExit("--seconds must be in (0, 120]: keep load runs bounded")
    if args.profile and (why := Profiler.available()):
        raise SystemExit(f"--profile: {why}")
    extra_env = SERVE_ENV | PATIENT_STARTUP_ENV | parse_pairs(args.env, "--env")
    names = RunNames("bench")
    topic, dlq = names.topic_for("cost"), names.topic_for("cost-dlq")
    app_args = {
        "kafka_bootstrap_servers": KAFKA,
        "kafka_topic": topic,
        "kafka_dlq_topic": dlq,
        "kafka_consumer_group": names.group_for("cost"),
        "redis_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/{args.redis_db}",
        "mongo_url": MONGO_URL,
        "mongo_database": names.mongo_database_for("cost"),
    } | parse_pairs(args.app_arg, "--app-arg")
    overrides: dict[str, dict[str, Any]] = {}
    if args.replica_env:
        ingress = next(
            d
            for d in yaml.safe_load((ROOT / "config.yaml").read_text())["applications"][0][
                "deployments"
            ]
            if d["name"] == "VoteIngress"
        )
        actor_options = ingress.get("ray_actor_options") or {}
        runtime_env = actor_options.get("runtime_env") or {}
        env_vars = (runtime_env.get("env_vars") or {}) | parse_pairs(
            args.replica_env, "--replica-env"
        )
        overrides["VoteIngress"] = {
            "ray_actor_options": actor_options
            | {"runtime_env": runtime_env | {"env_vars": env_vars}}
        }
    instance = ServeInstance(
        args=app_args,
        mode="haproxy",
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        extra_env=extra_env,
        import_path=args.import_path,
        deployment_overrides=overrides,
    )
    rows: list[dict[str, Any]] = []
    profiles: dict[str, Any] = {}
    create_topics([topic])
    create_topics([dlq], partitions=1)
    try:
        with instance:
            for protocol in protocols:
                log(f"warm-up {protocol} {args.warmup:.0f}s")
                run_load(
                    instance, protocol, args.warmup, args.concurrency, f"{names.run_id}w{protocol}"
                )
            print(
                f"\n{args.label or 'run'} ({ROOT}, {args.import_path}, env "
                f"{parse_pairs(args.env, '--env')},"
                f" replica env {parse_pairs(args.replica_env, '--replica-env')},"
                f" app args {parse_pairs(args.app_arg, '--app-arg')}):",
                flush=True,
            )
            print_header()
            for repeat in range(args.repeats):
                for protocol in protocols:
                    row = measure(
                        instance,
                        protocol,
                        args.seconds,
                        args.concurrency,
                        f"{names.run_id}m{repeat}{protocol}{time.monotonic_ns() % 10**6}",
                        topic,
                    )
                    rows.append(row)
                    print_row(row)
            if args.profile:
                out_dir = Path(tempfile.mkdtemp(prefix="ingress-cost-"))
                for protocol in protocols:
                    profiles[protocol] = profile(
                        instance,
                        protocol,
                        args.seconds,
                        args.concurrency,
                        f"{names.run_id}p{protocol}",
                        out_dir,
                        [p for p in args.inclusive.split(",") if p],
                    )
                    print_profile(protocol, profiles[protocol])
    finally:
        delete_topics([topic, dlq])
    if args.json:
        with args.json.open("a") as out:
            out.write(
                json.dumps(
                    {
                        "label": args.label,
                        "root": str(ROOT),
                        "import_path": args.import_path,
                        "env": parse_pairs(args.env, "--env"),
                        "replica_env": parse_pairs(args.replica_env, "--replica-env"),
                        "app_args": parse_pairs(args.app_arg, "--app-arg"),
                        "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                        "rows": rows,
                        "profiles": profiles,
                    }
                )
                + "\n"
            )


if __name__ == "__main__":
    main()
