"""`make bench`: every ingestion path and sink of votes, side by side, on this machine, in one run.

    .venv/bin/python -m bench.run                # everything (~40 min on 2 cores: see its estimate)
    .venv/bin/python -m bench.run --quick        # a tiny smoke of every group (~11 min)
    .venv/bin/python -m bench.run --only raw,peer      # groups or scenario names
    .venv/bin/python -m bench.run --only ingest,noop --serve-modes default,haproxy

(`python -m bench run ...` is the same.) Scenarios (group in brackets), each family a module of
bench/scenarios/. Serve scenarios carry their mode, e.g. `serve_noop_http[haproxy]` (haproxy:
what `make run` ships, the default of --serve-modes):
  kafka_producer_raw [raw]  confluent-kafka producing vote records from one process, acks=all
  ferretdb_raw       [raw]  insert_many of vote documents, 1000 per call
  redis_raw          [raw]  the pool's counter Lua script, 1000 votes per call
  plain_http_peer, plain_http_peer_batch [peer]  uvicorn + Starlette: validate with Vote,
                     produce with acks (no Ray), on asyncio like Serve's replica;
                     plain_grpc_peer, plain_grpc_peer_batch: the same with grpc.aio (asyncio);
                     plain_http_peer_uvloop, plain_http_peer_batch_uvloop: the HTTP peer on
                     uvloop (uvicorn's default), reported beside
  seed_rust_http, seed_rust_http_batch, seed_go_grpc, seed_go_grpc_batch, seed_go_http_grpc
                     [seed] the seed's Rust HTTP and Go gRPC servers (bench/peers/seed_build.py
                     builds them; skipped, with the reason in the report, without Rust or Go)
  serve_noop_http, serve_noop_grpc [noop]  bench.apps:build_noop: Serve with our routes and
                     methods and no work at all: the framework's own floor
  serve_{http,grpc}_{single,batch}_ingest [ingest]  VoteIngress as `make run` builds it, pool
                     idle (bench.apps:build_ingest_only): ingestion alone, like for like with
                     the peers
  serve_{http,grpc}_{single,batch} [serve]  the whole app (`serve run config.yaml`), pool
                     running; each repeat waits until the pool has counted every vote
  system_single, system_batch [system]  the whole app for a sustained window at the most it
                     sustains (lag-bounded load, bench/scenarios/system.py): votes/s accepted
                     and persisted, the lag when the load stops and the time the pool takes to
                     drain it
  e2e_latency        [e2e]  acceptance -> visible in /results, at ~50% of the best single rate
  persist_x1, persist_xN [persist]  the consumer pool draining a preloaded topic, 1 and N
                     replicas

Variants: a scenario measured again under another value of an app setting, in the same run, the
repeats of the two interleaved (A/B, B/A, ...); the report gives their ratio with its interval and
the targets judge the baseline (the first value, under the plain name) only. On by default:
  --persist-write-concerns majority,acknowledged   mongo_write_concern: persist_xN_acknowledged
  --batch-transactions on,off    kafka_batch_transactions: serve_http_batch_ingest_no_txn, on a
                     second ingest-only `serve run` beside the first (one more Serve start)
The variant runs --context-repeats times (3), against as many of the baseline's repeats; pass a
single value (e.g. --batch-transactions on, what --quick does) to measure the baseline alone.

The compared groups (peer, seed, noop, ingest) run --repeats times (5), so that the report can give
each comparison a bootstrap confidence interval (bench/harness/stats.py); the others run
--context-repeats times (3). Each repeat: warm-up, then a measured window. Every repeat reconciles
(votes accepted == records in Kafka == votes counted, as applicable; the no-op: every request
answered 202) and counts errors. Nothing touches a developer's data: own topics, consumer groups,
MongoDB databases, Redis keys or databases (--redis-db, --persist-redis-db), all removed at the
end. Writes bench/results/latest.{json,md,png} (or --out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.harness.env import RESULTS, ROOT, log
from bench.harness.runner import Bench
from bench.harness.serve_instance import MODES
from bench.harness.variants import BATCH_TRANSACTIONS, WRITE_CONCERNS
from serve_app.settings import MONGO_WRITE_CONCERNS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny durations, one repeat: a smoke test"
    )
    parser.add_argument("--only", default="", help="comma-separated groups or scenario names")
    parser.add_argument(
        "--skip", default="", help="comma-separated groups or scenario names to leave out"
    )
    parser.add_argument(
        "--repeats", type=int, help="repeats of the compared groups: peer, seed, noop, ingest (5)"
    )
    parser.add_argument(
        "--context-repeats",
        type=int,
        help="repeats of the other groups (default: the smaller of 3 and --repeats)",
    )
    parser.add_argument(
        "--warmup", type=float, help="seconds of warm-up before each measured window"
    )
    parser.add_argument("--duration", type=float, help="seconds of each measured window")
    parser.add_argument(
        "--batch-duration", type=float, help="measured window of the batch scenarios"
    )
    parser.add_argument(
        "--system-warmup",
        type=float,
        help="warm-up of system_* (where the lag-bounded load finds its rate)",
    )
    parser.add_argument("--system-duration", type=float, help="sustained window of system_*")
    parser.add_argument(
        "--system-load",
        choices=("lag-bounded", "closed"),
        default="lag-bounded",
        help="system_*: steer the rate from the pool's lag (default), or closed loop",
    )
    parser.add_argument(
        "--system-protocol",
        choices=("auto", "http", "grpc"),
        default="auto",
        help="system_*: the protocol (auto: the faster ingest-only one of this run)",
    )
    parser.add_argument("--concurrency", type=int, help="requests in flight, single-vote scenarios")
    parser.add_argument("--batch-concurrency", type=int, help="requests in flight, batch scenarios")
    parser.add_argument("--persist-records", type=int, help="records preloaded for persist")
    parser.add_argument(
        "--persist-replicas",
        default="",
        help="pool sizes to measure (default: 1 and config.yaml's VotePersister replicas)",
    )
    parser.add_argument(
        "--persist-write-concerns",
        default="",
        help="vote log write concerns (mongo_write_concern) to compare in persist, "
        f"comma-separated, the first as the baseline (choices: {', '.join(MONGO_WRITE_CONCERNS)}; "
        f"default: {WRITE_CONCERNS.default}; one value: the baseline alone)",
    )
    parser.add_argument(
        "--batch-transactions",
        default="",
        help="kafka_batch_transactions values to compare in serve_http_batch_ingest, "
        f"comma-separated, the first as the baseline (choices: on, off; default: "
        f"{BATCH_TRANSACTIONS.default}: serve_http_batch_ingest and "
        "serve_http_batch_ingest_no_txn, --quick: on; one value: the baseline alone)",
    )
    parser.add_argument(
        "--serve-modes",
        default="haproxy",
        help=f"Serve environment modes, comma-separated: {', '.join(MODES)} (default: "
        "haproxy, what `make run` ships; e2e_latency runs in the last one)",
    )
    parser.add_argument("--serve-config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument(
        "--ingress-max-ongoing",
        type=int,
        help="override VoteIngress max_ongoing_requests (experiments)",
    )
    parser.add_argument(
        "--ingress-replicas",
        type=int,
        help="fix VoteIngress at this many replicas instead of autoscaling (experiments)",
    )
    parser.add_argument(
        "--pool-replicas",
        type=int,
        help="fix the Serve app's VotePersister at this many replicas (experiments)",
    )
    parser.add_argument(
        "--app-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an application arg of the Serve app, e.g. kafka_linger_ms=5",
    )
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=9000)
    parser.add_argument(
        "--fallback-ports",
        type=int,
        nargs=2,
        metavar=("HTTP", "GRPC"),
        help="ports of Serve's own proxy behind HAProxy (default: --http-port + 4 and "
        "--grpc-port + 4). Serve's default 8500/9500 is machine-wide: another "
        "instance's HAProxy would send its votes there (docs/decisions/0017)",
    )
    parser.add_argument(
        "--redis-db", type=int, default=13, help="Redis database of the Serve app under test"
    )
    parser.add_argument(
        "--persist-redis-db",
        type=int,
        default=14,
        help="Redis database of the persist runs (and of redis_raw's prefixed keys)",
    )
    parser.add_argument(
        "--e2e-rate", type=float, help="votes/s for e2e_latency (default: 50%% of the best)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where latest.{json,md,png} go")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="py-spy profile of the ingress replica and Serve's proxy in one extra repeat of "
        "each Serve scenario, not counted in the medians (default: on when py-spy is installed)",
    )
    parser.add_argument(
        "--niceness",
        type=int,
        help="the niceness of every measured process: the stack, our `serve run` and its Ray, the "
        "peers and the load generator (default: the bench's own; the stack's is restored "
        "afterwards; docs/decisions/0026-bench-one-priority.md)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="update the existing latest.json: replace the scenarios measured now, keep the "
        "others (each scenario carries its measured_at and plan)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    try:
        return bench.run()
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
