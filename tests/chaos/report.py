"""Turn test-artifacts/chaos-report.jsonl into a Markdown table (`make chaos` prints and saves it)."""

from __future__ import annotations

import json
import sys

from tests.chaos.harness import REPORT

COLUMNS = ("scenario", "sent", "accepted", "counted", "stored", "duplicates", "unexpected",
           "retries", "recover_s")


def main() -> int:
    if not REPORT.exists():
        print(f"no chaos results at {REPORT}", file=sys.stderr)
        return 1
    rows = [json.loads(line) for line in REPORT.read_text().splitlines() if line.strip()]
    lines = ["| " + " | ".join(COLUMNS) + " | verdict |", "|" + " --- |" * (len(COLUMNS) + 1)]
    for row in rows:
        exact = (row["accepted"] == row["sent"] == row["counted"] == row["stored"]
                 and row["duplicates"] == 0 and row["unexpected"] == 0)
        cells = [str(row[c]) for c in COLUMNS] + ["exact" if exact else "MISMATCH"]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    out = REPORT.with_suffix(".md")
    out.write_text("# Chaos report\n\n" + table + "\n")
    print(table)
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
