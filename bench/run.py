"""`make bench`: `python -m bench.run [options]`, the same as `python -m bench run [options]`.

The run lives in bench/harness (cli, runner) and its scenario families in bench/scenarios.
"""

from __future__ import annotations

import sys

from bench.harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
