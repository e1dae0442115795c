"""Run the locust load test headless for a bounded time, then reconcile it exactly.

    .venv/bin/python -m loadtest.run                                  # against `make run`, 60 s
    .venv/bin/python -m loadtest.run --path grpc --users 50 --run-time 2m
    .venv/bin/python -m loadtest.run --host https://votes.example.com \\
        --grpc-target votes-grpc.example.com:443 --grpc-tls \\
        --write-token "$TOKEN"                                  # a RayService behind an Ingress

1. reads GET /results `total` once it is stable (the pool has drained what came before);
2. runs locust (`loadtest/locustfile.py`) headless with the given users, spawn rate and run time;
   every vote carries a vote_id and is retried with it until accepted, and locust writes the tally
   of distinct accepted votes;
3. waits (bounded by --drain-timeout) for the pool to persist everything: `total` reaches
   before + accepted and stays there;
4. prints the reconciliation and exits 0 only if the increase of `total` equals the votes locust
   saw accepted, exactly. It fails (1) on any difference, and says by how much and why that may be.

The count is global: nobody else may vote on the target during the run (another load test, a
test suite using the same Redis database), or the reconciliation fails. Reports (locust CSV and
HTML, reconciliation.json) go to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
PATH_TAGS = {"both": None, "http": ["http"], "grpc": ["grpc"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("VOTES_HTTP_URL", "http://127.0.0.1:8000"),
        help="base URL of the HTTP API (default http://127.0.0.1:8000)",
    )
    parser.add_argument(
        "--grpc-target",
        default=os.environ.get("VOTES_GRPC_TARGET", "127.0.0.1:9000"),
        help="host:port of the gRPC API (default 127.0.0.1:9000)",
    )
    parser.add_argument(
        "--grpc-tls", action="store_true", help="use TLS for gRPC (an Ingress on 443)"
    )
    parser.add_argument(
        "--path",
        choices=sorted(PATH_TAGS),
        default="both",
        help="which API to load: http, grpc or both (default)",
    )
    parser.add_argument(
        "--tags", default="", help="extra locust tags, comma-separated (single,batch,read)"
    )
    parser.add_argument("--users", "-u", type=int, default=20)
    parser.add_argument("--spawn-rate", "-r", type=float, default=5)
    parser.add_argument("--run-time", "-t", default="60s", help="locust run time, e.g. 30s, 5m")
    parser.add_argument(
        "--think-time",
        type=float,
        default=0.5,
        help="mean seconds between a user's tasks (0: as fast as possible)",
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=30,
        help="seconds votes in flight get to finish when the run time is up",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=180,
        help="seconds to wait for /results to reach the expected total",
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=60,
        help="seconds to wait for /results to be stable before starting",
    )
    parser.add_argument(
        "--write-token",
        default=os.environ.get("VOTES_WRITE_TOKEN", ""),
        help="bearer token for write routes (or env VOTES_WRITE_TOKEN)",
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "test-artifacts" / "loadtest",
        help="folder for locust's CSV/HTML and reconciliation.json",
    )
    parser.add_argument(
        "--locust-arg",
        action="append",
        default=[],
        help="passed to locust as is (repeatable), e.g. --locust-arg=--processes=2",
    )
    return parser.parse_args(argv)


def parse_duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    total, number = 0.0, ""
    for char in text.strip():
        if char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            total += float(number) * units[char]
            number = ""
        else:
            raise ValueError(f"bad duration {text!r}")
    return total + (float(number) if number else 0.0)


def log(message: str) -> None:
    print(f"[loadtest {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Results:
    def __init__(self, host: str) -> None:
        self._client = httpx.Client(base_url=host.rstrip("/"), timeout=10, follow_redirects=True)

    def total(self) -> int | None:
        try:
            response = self._client.get("/results")
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        return int(response.json()["total"])

    def stable_total(self, timeout_s: float, quiet_s: float = 3.0) -> tuple[int, bool]:
        """The total once it has not changed for quiet_s (bounded by timeout_s)."""
        deadline = time.monotonic() + timeout_s
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            current = self.total()
            if current is not None and current == last:
                if time.monotonic() - since >= quiet_s:
                    return current, True
            else:
                last, since = current, time.monotonic()
            time.sleep(0.5)
        if last is None:
            raise SystemExit(f"GET /results never answered 200 within {timeout_s:.0f}s")
        return last, False

    def wait_for(self, expected: int, timeout_s: float, stall_s: float = 30.0) -> tuple[int, float]:
        """Poll until total == expected (and stays for 1 s), stalls away from it, or times out."""
        started = time.monotonic()
        deadline = started + timeout_s
        last, changed_at = None, started
        while time.monotonic() < deadline:
            current = self.total()
            if current is not None and current != last:
                last, changed_at = current, time.monotonic()
            if current == expected:
                time.sleep(1.0)
                again = self.total()
                if again == expected:
                    return expected, time.monotonic() - started
                last, changed_at = again, time.monotonic()
            elif last is not None and last > expected:
                time.sleep(2.0)  # over-counted (or someone else voted): no waiting will fix that
                return self.total() or last, time.monotonic() - started
            elif time.monotonic() - changed_at > stall_s:
                break
            time.sleep(0.25)
        return last if last is not None else -1, time.monotonic() - started


def locust_command(args: argparse.Namespace, tally_file: Path) -> list[str]:
    out = args.out
    command = [
        str(Path(sys.executable).parent / "locust"),
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        args.host,
        "--grpc-target",
        args.grpc_target,
        "-u",
        str(args.users),
        "-r",
        str(args.spawn_rate),
        "-t",
        args.run_time,
        "--stop-timeout",
        str(max(1, round(args.stop_timeout))),
        "--think-time",
        str(args.think_time),
        "--tally-file",
        str(tally_file),
        "--only-summary",
        "--csv",
        str(out / "locust"),
        "--html",
        str(out / "locust.html"),
        "--exit-code-on-error",
        "0",  # a retried 503 is a failure in locust's stats, not for us
    ]
    tags = list(PATH_TAGS[args.path] or [])
    extra = [t for t in args.tags.split(",") if t.strip()]
    if extra and not tags:
        tags = ["http", "grpc"]
    if tags:
        # Locust keeps a task if it has any of the tags: combine path and kind by name.
        command += ["--tags", *tags]
        if extra:
            command += ["--exclude-tags", *sorted({"single", "batch", "read"} - set(extra))]
    elif extra:
        command += ["--tags", *extra]
    if args.grpc_tls:
        command.append("--grpc-tls")
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    return command + list(args.locust_arg)


def read_locust_stats(out: Path) -> dict[str, Any]:
    path = out / "locust_stats.csv"
    if not path.exists():
        return {}
    import csv

    rows = {}
    with path.open() as file:
        for row in csv.DictReader(file):
            rows[f"{row['Type']} {row['Name']}".strip()] = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": round(float(row["Requests/s"]), 1),
                "p50_ms": row.get("50%"),
                "p99_ms": row.get("99%"),
            }
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.host = args.host.rstrip("/")
    args.out.mkdir(parents=True, exist_ok=True)
    tally_file = args.out / "tally.json"
    tally_file.unlink(missing_ok=True)
    results = Results(args.host)

    log(f"target {args.host} (gRPC {args.grpc_target}); waiting for /results to be stable")
    before, stable = results.stable_total(args.settle_timeout)
    if not stable:
        log(
            f"WARNING: /results total was still moving after {args.settle_timeout:.0f}s "
            "(someone else voting, or a backlog): the reconciliation may fail"
        )
    log(f"/results total before: {before}")

    command = locust_command(args, tally_file)
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    }
    if args.write_token:
        env["VOTES_WRITE_TOKEN"] = args.write_token  # not on the command line (ps would show it)
    limit_s = parse_duration(args.run_time) + args.stop_timeout + 120
    log(f"locust: {args.users} users, {args.run_time}, path {args.path}")
    try:
        completed = subprocess.run(command, cwd=ROOT, env=env, timeout=limit_s, check=False)
    except subprocess.TimeoutExpired:
        log(f"locust did not end within {limit_s:.0f}s")
        return 2
    if not tally_file.exists():
        log(f"locust ended (exit {completed.returncode}) without writing its tally")
        return 2
    tally = json.loads(tally_file.read_text())
    expected = before + tally["accepted"]
    log(f"locust saw {tally['accepted']} votes accepted; waiting for /results total {expected}")
    after, drain_s = results.wait_for(expected, args.drain_timeout)
    increase = after - before
    exact = increase == tally["accepted"]

    report = {
        "exact": exact,
        "accepted": tally["accepted"],
        "increase": increase,
        "difference": increase - tally["accepted"],
        "in_doubt": tally["in_doubt"],
        "rejected": tally["rejected"],
        "requests": tally["requests"],
        "retries": tally["retries"],
        "total_before": before,
        "total_after": after,
        "drain_s": round(drain_s, 1),
        "host": args.host,
        "grpc_target": args.grpc_target,
        "path": args.path,
        "users": args.users,
        "run_time": args.run_time,
        "locust_exit": completed.returncode,
        "locust": read_locust_stats(args.out),
    }
    (args.out / "reconciliation.json").write_text(json.dumps(report, indent=2) + "\n")

    print()
    print("reconciliation")
    print(f"  votes locust saw accepted   {tally['accepted']:>10}")
    print(f"  /results total before       {before:>10}")
    print(f"  /results total after        {after:>10}   (drained in {drain_s:.1f}s)")
    print(f"  increase                    {increase:>10}")
    print(f"  requests / retries          {tally['requests']:>10} / {tally['retries']}")
    print(f"  rejected (4xx) / in doubt   {tally['rejected']:>10} / {tally['in_doubt']}")
    if exact:
        print(f"  EXACT: every accepted vote counted once ({increase} == {tally['accepted']})")
        return 0
    print(
        f"  MISMATCH: increase {increase} != accepted {tally['accepted']} "
        f"(difference {increase - tally['accepted']:+d})"
    )
    if tally["in_doubt"] and 0 <= increase - tally["accepted"] <= tally["in_doubt"]:
        print(
            f"  ...within the {tally['in_doubt']} votes in doubt (given up or cut off mid-request):"
            " raise --stop-timeout / --vote-deadline, or check why requests failed"
        )
    elif increase < tally["accepted"]:
        print(
            "  fewer counted than accepted: the pool has not drained (raise --drain-timeout) "
            "or accepted votes were lost"
        )
    else:
        print(
            "  more counted than accepted: someone else voted on this target during the run, "
            "or votes were counted twice"
        )
    return 1


if __name__ == "__main__":
    sys.exit(main())
