"""Soak: locust at ~70% of the measured single-vote capacity for 10 minutes on both paths, with
a private Prometheus scraping Ray, and every dashboard panel checked against live data.

    make soak                                          # = python -m loadtest.soak (600 s)
    make soak SOAK_ARGS=--quick                        # a smoke: 120 s, RSS shown not judged
    .venv/bin/python -m loadtest.soak --rate 100       # a fixed rate instead of 70% of capacity
    .venv/bin/python -m loadtest.soak --host http://127.0.0.1:8000 --grpc-target 127.0.0.1:9000
                                                       # soak `make run` (nobody else voting)

What it does, in order:
1. starts its own `serve run` (bench.harness.serve_instance.ServeInstance with the environment
   `make run` ships: HAProxy in front of direct ingress) with its own Kafka topics, consumer
   group, MongoDB database and Redis database (9), on HTTP :20030 and gRPC :20031; or uses --host
   (loadtest/soak_target.py);
2. starts a private Prometheus (loadtest/prometheus.py; Debian's package, installed if missing)
   whose targets are Ray's service-discovery file of that Ray, and waits for its targets;
3. picks the rate: --rate, or --share (0.7) of the best single-vote rate in
   bench/results/latest.json (loadtest/capacity.py), or of a short calibration;
4. runs locust headless (loadtest/soak_locustfile.py: the voters of loadtest/locustfile.py, single
   votes only, each user at a constant rate) for --duration, split between HTTP and gRPC; a few
   seconds in, sends the probes: invalid votes on both paths and undecodable records into the
   topic, so that the rejection and dead-letter panels have something true to show
   (loadtest/soak_load.py, loadtest/soak_probes.py);
5. every --sample-every seconds prints elapsed, votes sent, errors, Kafka lag and RSS; RSS of
   every process class (loadtest/rss.py) is taken after the warm-up and at the end of the load;
6. waits for the pool to drain, then reconciles exactly: votes accepted == records in Kafka (less
   the probes) == counted in Redis == documents in MongoDB == GET /results increase
   (loadtest/soak_stores.py);
7. runs every PromQL target of the Pipeline dashboard against the Prometheus over the load's
   window, and every Redis query of the Contest dashboard against the live Redis database
   (loadtest/panels.py);
8. writes test-artifacts/soak-report.{md,json} (loadtest/soak_report.py) and exits 0 only when:
   zero errors, the exact reconciliation, every panel OK (or allow-listed with its reason), the
   probes answered as expected, and no process class grew its RSS by more than --rss-limit
   percent.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

from loadtest import capacity as cap
from loadtest import panels, rss
from loadtest.prometheus import (
    DEFAULT_LISTEN,
    DEFAULT_SCRAPE_INTERVAL_S,
    PrivatePrometheus,
    PrometheusError,
    wait_for_file,
)
from loadtest.soak_load import calibrate, run_load
from loadtest.soak_log import log
from loadtest.soak_report import (
    Outcome,
    print_summary,
    verdict,
    write_reports,
)
from loadtest.soak_stores import Stores, reconcile, wait_drained
from loadtest.soak_target import OwnInstance, Target, find_sd_file, host_target

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
QUICK_DURATION_S = 120.0  # --quick: every step and check once; too short to judge RSS growth
DEFAULT_SAMPLE_EVERY_S = 30.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load = parser.add_argument_group("load")
    load.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke: {QUICK_DURATION_S:.0f} s of load, RSS shown but not judged",
    )
    load.add_argument("--duration", type=float, default=None, help="seconds of load (default 600)")
    load.add_argument(
        "--rate",
        type=float,
        default=None,
        help="total votes/s (default: --share of the measured capacity)",
    )
    load.add_argument(
        "--share",
        type=float,
        default=cap.DEFAULT_SHARE,
        help="share of the single-vote capacity to send (default 0.7)",
    )
    load.add_argument(
        "--grpc-share",
        type=float,
        default=0.5,
        help="share of the votes sent over gRPC; the rest over HTTP (default 0.5)",
    )
    load.add_argument(
        "--max-user-rate",
        type=float,
        default=2.0,
        help="votes/s of one locust user at most (default 2: a vote every 0.5 s)",
    )
    load.add_argument(
        "--bench-results",
        type=Path,
        default=cap.BENCH_RESULTS,
        help="the benchmark's results to take the capacity from",
    )
    load.add_argument(
        "--calibrate-s",
        type=float,
        default=10,
        help="seconds of each path's calibration burst when there is no capacity",
    )
    load.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds before the first RSS sample (default min(60, duration/4))",
    )
    load.add_argument(
        "--sample-every",
        type=float,
        default=DEFAULT_SAMPLE_EVERY_S,
        help="progress and RSS period (s)",
    )
    load.add_argument(
        "--drain-timeout",
        type=float,
        default=300,
        help="seconds the pool gets to persist everything after the load",
    )
    load.add_argument(
        "--rss-limit",
        type=float,
        default=10.0,
        help="RSS growth (percent) of a process class that counts as a finding",
    )
    probes = load.add_mutually_exclusive_group()
    probes.add_argument(
        "--probes",
        dest="probes",
        action="store_true",
        default=None,
        help="send the probes (default with our own instance)",
    )
    probes.add_argument(
        "--no-probes",
        dest="probes",
        action="store_false",
        help="send no probes (their panels are then allowed to stay empty)",
    )

    target = parser.add_argument_group("target (default: our own serve run)")
    target.add_argument(
        "--host", default=None, help="soak an app already running at this URL instead of our own"
    )
    target.add_argument("--grpc-target", default=None, help="host:port of its gRPC API")
    target.add_argument(
        "--ray-sd-file",
        type=Path,
        default=None,
        help="Ray's prom_metrics_service_discovery.json (default: found from the "
        "process serving the HTTP port)",
    )
    target.add_argument("--http-port", type=int, default=20030)
    target.add_argument("--grpc-port", type=int, default=20031)
    target.add_argument(
        "--port-block",
        type=int,
        default=int(os.environ.get("VOTES_BENCH_PORT_BLOCK", "39400")),
        help="first of the 42 ports the instance's direct ingress and HAProxy use",
    )
    target.add_argument(
        "--fallback-ports",
        type=int,
        nargs=2,
        default=(20034, 20035),
        metavar=("HTTP", "GRPC"),
        help="ports of Serve's own proxy behind HAProxy (Serve's default 8500 and "
        "9500 are shared by every instance on the machine)",
    )
    target.add_argument("--redis-db", type=int, default=9, help="Redis database of our instance")
    target.add_argument(
        "--app-config",
        type=Path,
        default=ROOT / "config.yaml",
        help="with --host: the config whose application args name the topic, "
        "group, Redis and MongoDB of the app (default config.yaml)",
    )

    prom = parser.add_argument_group("prometheus")
    prom.add_argument("--prometheus-listen", default=DEFAULT_LISTEN)
    prom.add_argument("--scrape-interval", type=int, default=DEFAULT_SCRAPE_INTERVAL_S)
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="leave our instance's Kafka topics and MongoDB database for a look",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ARTIFACTS,
        help="folder of soak-report.{md,json} and soak/ (locust, logs)",
    )
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = QUICK_DURATION_S if args.quick else 600.0
    if args.quick and args.sample_every == DEFAULT_SAMPLE_EVERY_S:
        args.sample_every = QUICK_DURATION_S / 8
    if args.duration <= 0:
        parser.error("--duration must be positive")
    if not 0 < args.share <= 1:
        parser.error("--share must be in (0, 1]")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be positive")
    if args.warmup is None:
        args.warmup = min(60.0, args.duration / 4)
    if args.probes is None:
        args.probes = args.host is None
    return args


def check_panels(
    prom: PrivatePrometheus,
    target: Target,
    outcome: Outcome,
    scrape_interval_s: int,
    probes_ran: bool,
) -> None:
    import redis

    queries = panels.dashboard_queries(
        panels.load_dashboard(panels.PIPELINE)
    ) + panels.dashboard_queries(panels.load_dashboard(panels.CONTEST))
    start, _ = outcome.load_window
    end = time.time()
    panels.check_prometheus(
        queries,
        prom.query_range,
        start - 10,
        end,
        step_s=scrape_interval_s,
        scrape_interval_s=scrape_interval_s,
    )
    client = redis.Redis.from_url(target.redis_url)
    try:
        panels.check_redis(queries, client)
    finally:
        client.close()
    outcome.queries = queries
    outcome.panel_verdict = panels.apply_allow_list(queries, probes_ran)
    outcome.prometheus["accepted_total_by_path"] = {
        item["metric"].get("path", "?"): float(item["value"][1])
        for item in prom.query("sum by (path) (ray_votes_accepted_total)")
    }


def soak(args: argparse.Namespace) -> Outcome:
    from bench.harness.cpu import stack_pids
    from loadtest.run import Results

    outcome = Outcome()
    own = OwnInstance(args) if args.host is None else None
    prom: PrivatePrometheus | None = None
    stores: Stores | None = None
    try:
        if own is not None:
            log(
                f"starting our own serve run (HTTP :{args.http_port}, gRPC :{args.grpc_port}, "
                f"Redis db {args.redis_db}, ports {args.port_block}+)"
            )
            target = own.start()
        else:
            target = host_target(args)
        sd_file = find_sd_file(args, target)
        log(f"Ray's service discovery file: {sd_file}")
        wait_for_file(sd_file, 60)
        prom = PrivatePrometheus(
            sd_file,
            (args.out / "soak" / "prometheus").resolve(),
            listen=args.prometheus_listen,
            scrape_interval_s=args.scrape_interval,
        )
        prom.start()
        targets = prom.wait_for_targets(90)
        outcome.prometheus = {
            "url": prom.url,
            "pid": prom.pid,
            "sd_file": str(sd_file),
            "scrape_interval_s": args.scrape_interval,
            "targets": [t.get("scrapeUrl") for t in targets],
        }
        log(f"prometheus (pid {prom.pid}) on {prom.url} scrapes {len(targets)} Ray targets")

        capacity = None
        if args.rate is None:
            capacity = cap.capacity_from_file(args.bench_results)
            if capacity is None:
                log(f"no single-vote capacity in {args.bench_results}: calibrating")
                capacity = calibrate(target, args.calibrate_s)
            log(f"capacity: {capacity.source}")
        rate = args.rate if args.rate is not None else capacity.rate(args.share)  # type: ignore[union-attr]
        outcome.plan = cap.plan_load(
            rate, args.grpc_share, args.max_user_rate, capacity, args.share
        )

        stores = Stores(target)
        _settled, stable = Results(target.http_url).stable_total(120)
        if not stable:
            outcome.problems.append(
                "GET /results was still moving before the load (a backlog, "
                "or someone else voting): the reconciliation may fail"
            )
        before = stores.counts()
        log(f"before: {before}")
        sampler = rss.RssSampler(
            stack=stack_pids(),
            sessions=[target.serve_session] if target.serve_session else [],
            extra={prom.pid: "prometheus"} if prom.pid else {},
            ray_session_dir=None if target.serve_session else target.ray_session_dir,
        )
        run_load(args, target, outcome.plan, sampler, outcome)
        poison = outcome.probes.poison_sent if outcome.probes else 0
        accepted = int(outcome.tally.get("accepted", 0))
        log(f"load done: {accepted} votes accepted; waiting for the pool to drain")
        after, outcome.drain_s = wait_drained(stores, before, accepted, poison, args.drain_timeout)
        # Let the last counters reach Ray's agent (~10 s) and one scrape more.
        time.sleep(12 + args.scrape_interval)
        after = stores.counts()
        outcome.reconciliation = reconcile(accepted, before, after, poison)
        log(f"after: {after}")
        if not outcome.reconciliation.exact:
            with contextlib.suppress(Exception):
                outcome.diagnosis = stores.diagnose(outcome.load_window)
                log(f"not exact; the vote log: {outcome.diagnosis}")
        check_panels(prom, target, outcome, args.scrape_interval, bool(outcome.probes))
    finally:
        if stores is not None:
            stores.close()
        if prom is not None:
            log(f"stopping prometheus (pid {prom.pid})")
            prom.stop()
        if own is not None:
            own.stop(keep_data=args.keep_data)
    return outcome


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from devkit.waiting import WaitFailed

    try:
        outcome = soak(args)
    except (PrometheusError, RuntimeError, WaitFailed) as exc:
        log(f"soak aborted: {exc}")
        return 2
    failures = verdict(outcome)
    md, js = write_reports(args, outcome, failures)
    print_summary(outcome, failures, args.rss_limit)
    log(f"report: {md} and {js}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
