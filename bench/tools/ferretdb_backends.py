"""FerretDB on SQLite against FerretDB on PostgreSQL: `ferretdb_raw`, `persist` and `_id` lookups.

    .venv/bin/python -m bench.tools.ferretdb_backends                       # 2 rounds, ~5 minutes
    .venv/bin/python -m bench.tools.ferretdb_backends --rounds 3 --persist-records 40000 \\
        --out /tmp/x

Starts two private FerretDBs of the stack's own binary (the shared one on 27017 is never touched),
each a local stack of its own under .stack/bench-ferretdb/<backend>/ (deployments.local.stack with
VOTES_STACK_FERRETDB_BACKEND): one on SQLite, one on a private PostgreSQL cluster. Ports: --port
(FerretDB on SQLite), +1 (FerretDB on PostgreSQL), +2 (PostgreSQL). Then, round after round, each
backend in turn (A/B/A/B, so that the machine's noise falls on both alike):

    ferretdb_raw        insert_many of 1000 vote documents, one client (bench/scenarios/raw_sinks)
    persist_x1/x2       the pool (bench.pool_worker processes) draining a preloaded topic into
                        this FerretDB and the stack's Redis (database --redis-db)
    id_lookups          find_one by _id on a 20,000-vote log: the redelivery path (decision 0004)

CPU per vote comes from /proc: the pool workers, the backend's FerretDB, and PostgreSQL (its
postmaster and every backend process it forked). Writes ferretdb-backends.{md,json} to --out
(default bench/results/). Everything it made (topics, groups, databases, the two stacks' data) is
deleted at the end; the stacks are stopped by their pid files even when a run fails.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import redis

from bench.harness.env import REDIS_HOST, REDIS_PORT, RESULTS, ROOT, log
from bench.harness.report.writer import write_json
from bench.harness.stores import clear_votes_keys
from bench.scenarios import raw_sinks as sinks
from bench.scenarios.persist import persist_run, preload
from bench.tools.ferretdb_report import render, summarize
from deployments.local.stack import Config, Stack
from deployments.local.stack.processes import read_pid
from devkit.kafka import create_topics, delete_topics
from devkit.names import RunNames
from serve_app.domain.counting import Delivered
from serve_app.stores.mongo_log import vote_document

WORK = ROOT / ".stack" / "bench-ferretdb"
MAIN_BIN = ROOT / ".stack" / "bin"
LOOKUP_LOG_SIZE = 20_000
LOOKUPS = 200


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2, help="A/B rounds (default 2)")
    parser.add_argument("--warmup", type=float, default=2.0, help="ferretdb_raw warm-up, s")
    parser.add_argument("--duration", type=float, default=6.0, help="ferretdb_raw window, s")
    parser.add_argument("--persist-records", type=int, default=20_000)
    parser.add_argument("--persist-replicas", default="1,2", help="pool sizes, comma-separated")
    parser.add_argument(
        "--redis-db", type=int, default=10, help="Redis database of the persist runs"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=20022,
        help="FerretDB on SQLite; +1 FerretDB on PostgreSQL, +2 PostgreSQL",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="folder of ferretdb-backends.{md,json}"
    )
    return parser.parse_args(argv)


# ---- the two private FerretDBs -------------------------------------------------------------------


class Backend:
    """A private stack of FerretDB (and PostgreSQL) on `backend`, sharing the stack's binary."""

    def __init__(self, backend: str, mongo_port: int, postgres_port: int) -> None:
        self.backend = backend
        self.root = WORK / backend
        self.stack = Stack(
            Config.from_env(
                {
                    "VOTES_STACK_DIR": str(self.root),
                    "VOTES_STACK_FERRETDB_BACKEND": backend,
                    "VOTES_MONGO_PORT": str(mongo_port),
                    "VOTES_FERRETDB_DEBUG_PORT": "0",
                    "VOTES_POSTGRES_PORT": str(postgres_port),
                }
            )
        )
        self.mongo_url = f"mongodb://127.0.0.1:{mongo_port}/"
        self.parts = [part for part in ("postgresql", "ferretdb") if part in self.stack.parts]

    def start(self) -> None:
        # The stack's FerretDB build, not a second one: the build stamp says it is up to date.
        binary = MAIN_BIN / "ferretdb"
        if not binary.exists():
            raise SystemExit(f"{binary} is missing: run `make stack-up` (it builds FerretDB) first")
        (self.root / "bin").mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            (self.root / "bin" / "ferretdb").symlink_to(binary)
        shutil.copy(MAIN_BIN / "ferretdb.build", self.root / "bin" / "ferretdb.build")
        for part in self.parts:
            self.stack.start(part)

    def stop(self) -> None:
        for part in reversed(self.parts):
            with contextlib.suppress(Exception):
                self.stack.stop(part)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of this backend's processes (PostgreSQL with all it forked)."""
        seconds = {}
        for part in self.parts:
            pid = read_pid(self.stack.config.pid_path(part))
            if pid is not None:
                seconds[f"{part}_{self.backend}"] = process_tree_cpu(pid)
        return seconds


def process_tree_cpu(pid: int) -> float:
    """User + system CPU of a process, its live descendants and the children it reaped."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        times = process.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
    return total


@contextlib.contextmanager
def running(backends: list[Backend]) -> Iterator[None]:
    try:
        for backend in backends:
            log(f"starting FerretDB on {backend.backend} ({backend.mongo_url})")
            backend.start()
        yield
    finally:
        for backend in backends:
            backend.stop()
        shutil.rmtree(WORK, ignore_errors=True)


# ---- the measurements ----------------------------------------------------------------------------


def with_cpu_per_vote(result: dict[str, Any]) -> dict[str, Any]:
    """Add µs of CPU per vote of each process over the run's measured window."""
    window = result["cpu_window"]
    votes = window["votes"] or 0
    result["cpu_us_per_vote"] = {
        part: round(seconds * 1e6 / votes, 1) if votes else None
        for part, seconds in window["cpu_s"].items()
    }
    return result


def id_lookups(mongo_url: str, database: str) -> dict[str, Any]:
    """Insert a 20,000-vote log, then time LOOKUPS find_one by _id (what a redelivery does)."""
    from pymongo import MongoClient

    client: Any = MongoClient(mongo_url, serverSelectionTimeoutMS=5000, socketTimeoutMS=120_000)
    collection = client[database]["votes"]
    templates = [
        vote_document(Delivered(r, "bench", i % 6, i), datetime.now(UTC))
        for i, r in enumerate(sinks.vote_records(1000))
    ]
    tag = uuid.uuid4().hex[:8]
    try:
        for start in range(0, LOOKUP_LOG_SIZE, 1000):
            collection.insert_many(
                [t | {"_id": f"{tag}-{start + i}"} for i, t in enumerate(templates)], ordered=False
            )
        ids = [f"{tag}-{(i * 7919) % LOOKUP_LOG_SIZE}" for i in range(LOOKUPS)]
        started = time.monotonic()
        found = sum(
            collection.find_one({"_id": vote_id}, {"kafka": 1}) is not None for vote_id in ids
        )
        took_ms = (time.monotonic() - started) * 1000
        client.drop_database(database)
    finally:
        client.close()
    return {
        "lookups": LOOKUPS,
        "found": found,
        "log_size": LOOKUP_LOG_SIZE,
        "ms_per_lookup": round(took_ms / LOOKUPS, 3),
        "reconciled": found == LOOKUPS,
    }


def one_round(
    backend: Backend,
    args: argparse.Namespace,
    names: RunNames,
    topic: str,
    records: int,
    replicas: list[int],
    round_no: int,
) -> dict[str, Any]:
    tag = f"{backend.backend}_{round_no}"
    result: dict[str, Any] = {"backend": backend.backend, "round": round_no}
    raw = with_cpu_per_vote(
        sinks.ferretdb_raw(
            names.mongo_database_for(f"raw_{tag}"),
            args.warmup,
            args.duration,
            mongo_url=backend.mongo_url,
            extra_cpu=backend.cpu,
        )
    )
    log(
        f"{backend.backend} #{round_no} ferretdb_raw: {raw['votes_per_s']} votes/s, "
        f"{raw['cpu_us_per_vote']} µs/vote, reconciled {raw['reconciled']}"
    )
    result["ferretdb_raw"] = raw
    for count in replicas:
        run = with_cpu_per_vote(
            persist_run(
                topic,
                names.group_for(f"p{count}-{tag}"),
                names.mongo_database_for(f"p{count}_{tag}"),
                args.redis_db,
                records,
                count,
                timeout_s=240,
                mongo_url=backend.mongo_url,
                extra_cpu=backend.cpu,
            )
        )
        log(
            f"{backend.backend} #{round_no} persist_x{count}: {run['votes_per_s']} votes/s, "
            f"{run['cpu_us_per_vote']} µs/vote, {run['reconciliation']}"
        )
        result[f"persist_x{count}"] = run
    lookups = id_lookups(backend.mongo_url, names.mongo_database_for(f"lookup_{tag}"))
    log(f"{backend.backend} #{round_no} id_lookups: {lookups['ms_per_lookup']} ms each")
    result["id_lookups"] = lookups
    return result


# ---- the report ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    replicas = [int(x) for x in args.persist_replicas.split(",") if x.strip()]
    names = RunNames("fdbb")
    topic = names.topic
    backends = [
        Backend("sqlite", args.port, args.port + 2),
        Backend("postgresql", args.port + 1, args.port + 2),
    ]
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=args.redis_db)
    foreign = [k for k in client.scan_iter(count=500) if not k.startswith(b"votes:")][:1]
    if foreign:
        raise SystemExit(
            f"Redis database {args.redis_db} holds other keys ({foreign[0]!r}): pick another"
        )
    load_before = psutil.getloadavg()[0]
    rounds: list[dict[str, Any]] = []
    create_topics([topic, topic + ".dlq"])
    try:
        with running(backends):
            log(f"preloading {args.persist_records} records into {topic}")
            records = preload(topic, args.persist_records)
            for round_no in range(1, args.rounds + 1):
                for backend in backends:
                    rounds.append(
                        one_round(backend, args, names, topic, records, replicas, round_no)
                    )
    finally:
        delete_topics([topic, topic + ".dlq"])
        clear_votes_keys(client)
        client.close()
    rows = summarize(rounds, replicas)
    load = (load_before, psutil.getloadavg()[0])
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(
        args.out / "ferretdb-backends.json",
        {
            "summary": rows,
            "rounds": rounds,
            "load_average": load,
            "plan": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        },
    )
    (args.out / "ferretdb-backends.md").write_text(render(rows, replicas, args, load))
    log(f"wrote {args.out / 'ferretdb-backends.md'}")
    print(render(rows, replicas, args, load))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
