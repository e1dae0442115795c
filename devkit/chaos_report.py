"""Turn test-artifacts/chaos-report.jsonl into a Markdown table (`make chaos` prints and saves
it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Where tests/chaos/harness.py appends one JSON line per scenario.
REPORT = Path(__file__).resolve().parents[1] / "test-artifacts" / "chaos-report.jsonl"

COLUMNS = (
    "scenario",
    "sent",
    "accepted",
    "shed",
    "counted",
    "stored",
    "duplicates",
    "unexpected",
    "retries",
    "recover_s",
)


def main() -> int:
    if not REPORT.exists():
        print(f"no chaos results at {REPORT}", file=sys.stderr)
        return 1
    rows = [json.loads(line) for line in REPORT.read_text().splitlines() if line.strip()]
    lines = ["| " + " | ".join(COLUMNS) + " | verdict |", "|" + " --- |" * (len(COLUMNS) + 1)]
    for row in rows:
        row.setdefault("shed", 0)
        exact = (
            row["accepted"] + row["shed"] == row["sent"]
            and row["accepted"] == row["counted"] == row["stored"]
            and row["duplicates"] == 0
            and row["unexpected"] == 0
        )
        cells = [str(row[c]) for c in COLUMNS] + ["exact" if exact else "MISMATCH"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {row['scenario']}: {row['notes']}" for row in rows if row.get("notes")]
    table = "\n".join(lines + ([""] + notes if notes else []))
    out = REPORT.with_suffix(".md")
    out.write_text("# Chaos report\n\n" + table + "\n")
    print(table)
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
