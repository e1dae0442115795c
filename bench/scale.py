"""`make bench-scale`: `python -m bench.scale [options]`, the same as `python -m bench scale ...`.

The run lives in bench/scenarios/scale (options, ingest, persist, run) over bench/harness.
"""

from __future__ import annotations

import sys

from bench.scenarios.scale.run import main

if __name__ == "__main__":
    sys.exit(main())
