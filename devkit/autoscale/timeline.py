"""The scenario's timeline as text: one row per sample, for a terminal or Markdown."""

from __future__ import annotations

from devkit.autoscale.spec import Row

COLUMNS = ("t (s)", "produced/s", "lag", "VoteIngress", "VotePersister", "nodes", "CPUs used")


def row_cells(row: Row) -> tuple[str, ...]:
    pool = f"{row.pool}" + (f" (+{row.pool_starting} starting)" if row.pool_starting else "")
    return (
        f"{row.t:.0f}",
        f"{row.rate:,.0f}",
        "?" if row.lag is None else f"{row.lag:,}",
        str(row.ingress),
        pool,
        str(row.nodes),
        f"{row.cpus_used:g} / {row.cpus_total:g}",
    )


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---:" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(row_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def text_table_line(cells: tuple[str, ...]) -> str:
    widths = (6, 11, 9, 11, 26, 5, 10)
    return "  ".join(cell.rjust(width) for cell, width in zip(cells, widths, strict=True))
