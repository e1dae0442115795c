"""`serve run` for a second local Ray beside a running one (`make bench`'s --batch-transactions
variant).

    python -m bench.serve_beside <dashboard agent port> run --address local <config>

Ray 2.60 starts each node's dashboard agent on port 52365 and `serve run` offers no way to change
it: a second local Ray's agent cannot bind, and its raylet dies ("The current node timed out
during startup"; seen). This sets the agent's port, then runs Serve's own CLI with the rest.
"""

from __future__ import annotations

import sys
from typing import Any

from ray._private import parameter
from ray.serve.scripts import cli


def main() -> None:
    port = int(sys.argv.pop(1))
    init = parameter.RayParams.__init__

    def with_agent_port(self: parameter.RayParams, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.dashboard_agent_listen_port = port

    parameter.RayParams.__init__ = with_agent_port  # type: ignore[method-assign]
    sys.argv[0] = "serve"
    cli()


if __name__ == "__main__":
    main()
