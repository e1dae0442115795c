"""The one report writer: a run's data as <stem>.json, its markdown as <stem>.md, its chart as
<stem>.png (the chart is a convenience: the data is written without it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)


def write_reports(
    out: Path,
    stem: str,
    data: dict[str, Any],
    markdown: Callable[[dict[str, Any]], str],
    chart: Callable[[dict[str, Any], Path], None] | None,
) -> None:
    """out/<stem>.json, out/<stem>.md and, with `chart`, out/<stem>.png."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{stem}.json", data)
    (out / f"{stem}.md").write_text(markdown(data))
    if chart is not None:
        try:
            chart(data, out / f"{stem}.png")
        except Exception as exc:  # noqa: BLE001 - the chart is a convenience, the data is written
            print(f"[bench] chart not written: {exc}", flush=True)
