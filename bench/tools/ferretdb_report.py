"""ferretdb-backends.{md,json}'s content: each backend's medians over the rounds, and the table
and reading of bench/tools/ferretdb_backends.py's comparison (pure: no services)."""

from __future__ import annotations

import argparse
import statistics
from datetime import UTC, datetime
from typing import Any

import psutil

from deployments.local.stack.config import FERRETDB_BACKENDS


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


def spread(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    return f"{min(values):,.0f}-{max(values):,.0f}" if values else "-"


def summarize(rounds: list[dict[str, Any]], replicas: list[int]) -> list[dict[str, Any]]:
    rows = []
    for backend in FERRETDB_BACKENDS:
        mine = [r for r in rounds if r["backend"] == backend]
        if not mine:
            continue

        def backend_cpu(result: dict[str, Any], backend: str = backend) -> float | None:
            """FerretDB's (and PostgreSQL's) µs per vote: this backend's processes, not the
            stack's."""
            values = [
                v
                for k, v in result["cpu_us_per_vote"].items()
                if k.endswith(f"_{backend}") and v is not None
            ]
            return sum(values) if values else None

        row: dict[str, Any] = {"backend": backend}
        raws = [r["ferretdb_raw"] for r in mine]
        row["ferretdb_raw"] = {
            "votes_per_s": median([x["votes_per_s"] for x in raws]),
            "spread": spread([x["votes_per_s"] for x in raws]),
            "backend_cpu_us_per_vote": median([backend_cpu(x) for x in raws]),
            "reconciled": all(x["reconciled"] for x in raws),
        }
        for count in replicas:
            runs = [r[f"persist_x{count}"] for r in mine]

            row[f"persist_x{count}"] = {
                "votes_per_s": median([x["votes_per_s"] for x in runs]),
                "spread": spread([x["votes_per_s"] for x in runs]),
                "steady_votes_per_s": median([x.get("steady_votes_per_s") for x in runs]),
                "pool_worker_us": median([x["cpu_us_per_vote"].get("pool_worker") for x in runs]),
                "backend_us": median([backend_cpu(x) for x in runs]),
                "redis_us": median([x["cpu_us_per_vote"].get("redis") for x in runs]),
                "reconciled": all(x["reconciled"] for x in runs),
            }
        row["id_lookup_ms"] = median([r["id_lookups"]["ms_per_lookup"] for r in mine])
        rows.append(row)
    return rows


def render(
    rows: list[dict[str, Any]],
    replicas: list[int],
    args: argparse.Namespace,
    load: tuple[float, float],
) -> str:
    lines = [
        "# FerretDB backends: SQLite and PostgreSQL side by side",
        "",
        (
            f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} on {psutil.cpu_count()} cores; "
            f"{args.rounds} A/B rounds; 1-minute load average before/after {load[0]:.1f} / "
            f"{load[1]:.1f} "
            "(a shared machine: rates move with it, CPU per vote much less). "
            "`python -m bench.tools.ferretdb_backends`."
        ),
        "",
        (
            "Each backend is a private FerretDB (the stack's binary) started for this run; "
            "PostgreSQL is a "
            "private cluster (Debian's package, fsync and synchronous_commit on). Medians, spread "
            "min-max. "
            "CPU per vote from /proc: `backend` is FerretDB, plus PostgreSQL's processes for the "
            "postgresql backend. `steady`: from the moment every pool worker held partitions "
            "(bench/scenarios/persist.py)."
        ),
        "",
        "| backend | ferretdb_raw votes/s | spread | backend µs/vote | "
        + " | ".join(
            f"persist_x{c} votes/s | spread | steady | pool µs | backend µs | redis µs"
            for c in replicas
        )
        + " | find_one by _id (20k log) | reconciled |",
        "| --- | ---: | ---: | ---: | "
        + " | ".join("---: | ---: | ---: | ---: | ---: | ---:" for _ in replicas)
        + " | ---: | :---: |",
    ]
    for row in rows:
        raw = row["ferretdb_raw"]
        cells = [
            row["backend"],
            f"{raw['votes_per_s']:,.0f}",
            raw["spread"],
            str(raw["backend_cpu_us_per_vote"]),
        ]
        reconciled = raw["reconciled"]
        for count in replicas:
            p = row[f"persist_x{count}"]
            steady = p["steady_votes_per_s"]
            cells += [
                f"{p['votes_per_s']:,.0f}",
                p["spread"],
                "-" if steady is None else f"{steady:,.0f}",
                str(p["pool_worker_us"]),
                str(p["backend_us"]),
                str(p["redis_us"]),
            ]
            reconciled = reconciled and p["reconciled"]
        cells += [f"{row['id_lookup_ms']} ms", "yes" if reconciled else "**no**"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Raw data: `ferretdb-backends.json` (every round, every run with its CPU breakdown).",
        "",
    ]
    return "\n".join(lines)
