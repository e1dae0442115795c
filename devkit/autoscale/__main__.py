"""Run the autoscaling scenario once, in a process of its own, and write its result as JSON:

    python -m devkit.autoscale --json FILE [--records N] [--rate R] [--redis-db DB]

(tests/autoscaling/test_node_autoscaling.py runs it this way, so no Ray state leaks into pytest.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from devkit.autoscale.fake_cluster import CLIENT_ENV, ClusterSpec
from devkit.autoscale.scenario import Scenario, stop_on_sigterm
from devkit.autoscale.spec import Row, ScenarioSpec
from devkit.autoscale.timeline import COLUMNS, row_cells, text_table_line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.autoscale", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--json", type=Path, required=True, help="write the result here")
    parser.add_argument("--records", type=int, default=ScenarioSpec.records)
    parser.add_argument("--rate", type=float, default=ScenarioSpec.produce_rate)
    parser.add_argument("--redis-db", type=int, help="an empty Redis database (default: find one)")
    args = parser.parse_args(argv)
    missing = {k: v for k, v in CLIENT_ENV.items() if os.environ.get(k) != v}
    if missing:  # Ray reads them at import: re-run with them set
        os.execve(
            sys.executable,
            [
                sys.executable,
                "-m",
                "devkit.autoscale",
                *(argv if argv is not None else sys.argv[1:]),
            ],
            os.environ | CLIENT_ENV,
        )
    stop_on_sigterm()

    def log(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)

    def show(row: Row) -> None:
        print(text_table_line(row_cells(row)), flush=True)

    spec = ScenarioSpec(
        records=args.records,
        produce_rate=args.rate,
        redis_db=args.redis_db,
        cluster=ClusterSpec(include_dashboard=False),
    )
    print(text_table_line(COLUMNS), flush=True)
    result = Scenario(spec, on_row=show, log=log).run()
    args.json.write_text(json.dumps(result.to_json(), indent=1))
    return 0 if result.failure is None else 1


if __name__ == "__main__":
    sys.exit(main())
