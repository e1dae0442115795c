"""The soak's load: the calibration when there is no measured capacity, the locust run at the
planned rate (loadtest/soak_locustfile.py) with the probes a few seconds in, and the progress
and RSS samples taken while it runs."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from loadtest import capacity as cap
from loadtest import rss
from loadtest.capacity import LoadPlan
from loadtest.soak_log import log
from loadtest.soak_probes import send_probes
from loadtest.soak_report import Outcome
from loadtest.soak_target import Target

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "loadtest" / "soak_locustfile.py"
# Process classes whose RSS may grow past the limit, and why. Empty until a soak shows one whose
# growth is understood and bounded; every entry needs its reason.
RSS_EXPLAINED: dict[str, str] = {}
# Below this many seconds between the RSS samples growth is shown, not judged (--quick's runs).
RSS_MIN_WINDOW_S = 240.0


def calibrate(target: Target, seconds: float) -> cap.Capacity:
    """Closed-loop single votes on each path (bench.harness.loadgen, 32 in flight): the best."""
    from urllib.parse import urlparse

    from bench.harness.loadgen import run_grpc, run_http
    from bench.harness.payloads import Bodies, GrpcMessages

    url = urlparse(target.http_url)
    log(f"calibrating: {seconds:.0f}s of single votes on each path (32 in flight)")
    http = run_http(
        url.hostname,
        url.port or 80,
        "/votes",
        Bodies("single", "soak-cal-http"),
        concurrency=32,
        warmup_s=2,
        duration_s=seconds,
    ).summary()
    grpc = run_grpc(
        target.grpc_target,
        GrpcMessages("single", "soak-cal-grpc"),
        concurrency=32,
        warmup_s=2,
        duration_s=seconds,
    ).summary()
    log(
        f"calibration: HTTP {http['votes_per_s']} votes/s ({http['errors']} errors), "
        f"gRPC {grpc['votes_per_s']} votes/s ({grpc['errors']} errors)"
    )
    best = max(http["votes_per_s"], grpc["votes_per_s"])
    if best <= 0:
        raise RuntimeError("calibration accepted no votes: is the app healthy?")
    return cap.Capacity(
        best,
        f"calibration: HTTP {http['votes_per_s']}, gRPC "
        f"{grpc['votes_per_s']} votes/s over {seconds:.0f}s",
    )


def locust_command(
    target: Target, plan: LoadPlan, duration_s: float, out: Path, tally_file: Path
) -> list[str]:
    users = plan.http_users + plan.grpc_users
    return [
        str(Path(sys.executable).parent / "locust"),
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        target.http_url,
        "--grpc-target",
        target.grpc_target,
        "--tags",
        "single",
        "-u",
        str(users),
        "-r",
        str(max(1.0, users / 10)),
        "-t",
        f"{math.ceil(duration_s)}s",
        "--stop-timeout",
        "30",
        "--tally-file",
        str(tally_file),
        "--only-summary",
        "--csv",
        str(out / "locust"),
        "--html",
        str(out / "locust.html"),
        "--exit-code-on-error",
        "0",  # errors are judged from the stats and the tally
    ]


def locust_env(plan: LoadPlan) -> dict[str, str]:
    return os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "VOTES_SOAK_HTTP_USERS": str(plan.http_users),
        "VOTES_SOAK_HTTP_USER_RATE": f"{plan.http_user_rate or 1:.6f}",
        "VOTES_SOAK_GRPC_USERS": str(plan.grpc_users),
        "VOTES_SOAK_GRPC_USER_RATE": f"{plan.grpc_user_rate or 1:.6f}",
    }


def locust_totals(out: Path) -> tuple[int, int]:
    """(requests, failures) of locust's Aggregated row so far (its CSV is rewritten every s)."""
    with (
        contextlib.suppress(OSError, ValueError, KeyError),
        (out / "locust_stats.csv").open() as file,
    ):
        for row in csv.DictReader(file):
            if row["Name"] == "Aggregated":
                return int(row["Request Count"]), int(row["Failure Count"])
    return 0, 0


def sample_times(duration_s: float, warmup_s: float, every_s: float) -> list[float]:
    """When to print progress and sample RSS (s after the load started): every every_s, plus
    the warm-up mark (the first RSS sample) and just before the load ends (the last)."""
    end = max(warmup_s, duration_s - 3)
    times = {round(k * every_s, 3) for k in range(1, int(end // every_s) + 1)}
    return sorted(t for t in times | {warmup_s, end} if 0 < t <= end)


def run_load(
    args: argparse.Namespace,
    target: Target,
    plan: LoadPlan,
    sampler: rss.RssSampler,
    outcome: Outcome,
) -> None:
    from devkit.kafka import LagReader
    from loadtest.run import read_locust_stats

    out = args.out / "soak"
    out.mkdir(parents=True, exist_ok=True)
    tally_file = out / "tally.json"
    tally_file.unlink(missing_ok=True)
    (out / "locust_stats.csv").unlink(missing_ok=True)
    command = locust_command(target, plan, args.duration, out, tally_file)
    lag_reader = LagReader(target.topic, target.group)
    log(
        f"locust: {plan.http_users} HTTP users x {plan.http_user_rate:.2f}/s + {plan.grpc_users} "
        f"gRPC users x {plan.grpc_user_rate:.2f}/s = {plan.rate:.1f} votes/s for "
        f"{args.duration:.0f}s (log {out / 'locust.log'})"
    )
    samples: list[rss.Sample] = []
    with open(out / "locust.log", "wb") as locust_log:
        started = time.time()
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=locust_env(plan),
            stdout=locust_log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        sampler.named[proc.pid] = "locust"
        try:
            probe_at = min(5.0, args.duration / 4)
            for at in [probe_at, *sample_times(args.duration, args.warmup, args.sample_every)]:
                while time.time() - started < at and proc.poll() is None:
                    time.sleep(0.2)
                if proc.poll() is not None:
                    break
                if at == probe_at and args.probes:
                    outcome.probes = send_probes(target)
                    log(
                        f"probes: HTTP {outcome.probes.http_answers}, gRPC "
                        f"{outcome.probes.grpc_answers}, {outcome.probes.poison_sent} undecodable "
                        "records into the topic"
                    )
                    continue
                sample = sampler.sample()
                if at >= args.warmup:
                    samples.append(sample)
                sent, failures = locust_totals(out)
                lag = lag_reader.lag()
                line = {
                    "elapsed_s": round(time.time() - started),
                    "sent": sent,
                    "errors": failures,
                    "lag": lag,
                    "rss_mb": round(sample.total() / rss.MB, 1),
                }
                outcome.progress.append(
                    line
                    | {
                        "rss_by_class_mb": {
                            k: round(v / rss.MB, 1) for k, v in sorted(sample.by_class().items())
                        }
                    }
                )
                log(
                    f"{line['elapsed_s']:>4}s  sent {sent:>7}  errors {failures}  "
                    f"lag {'?' if lag is None else lag}  RSS {line['rss_mb']:.0f} MB"
                )
            proc.wait(timeout=args.duration + 120)
        except BaseException:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            raise
        finally:
            lag_reader.close()
        outcome.load_window = (started, time.time())
    outcome.locust_exit = proc.returncode
    outcome.locust = read_locust_stats(out)
    if not tally_file.exists():
        raise RuntimeError(
            f"locust ended (exit {proc.returncode}) without its tally; see {out / 'locust.log'}"
        )
    outcome.tally = json.loads(tally_file.read_text())
    if len(samples) >= 2:
        outcome.rss_rows = rss.growth(
            samples[0], samples[-1], args.rss_limit, RSS_EXPLAINED, RSS_MIN_WINDOW_S
        )
        outcome.rss_processes = rss.per_process(samples[0], samples[-1])
    else:
        outcome.problems.append("fewer than two RSS samples after the warm-up: no growth figure")
