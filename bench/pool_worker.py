"""One consumer of the pool, outside Ray: `serve_app.pool.consume_loop.ConsumeLoop.run()` in a
process.

    VOTES_KAFKA_TOPIC=... VOTES_KAFKA_CONSUMER_GROUP=... .venv/bin/python -m bench.pool_worker

This is the exact loop a `VotePersister` replica runs on its background thread (Serve only starts,
health-checks and scales the replica; it is not on the consume path), so N of these processes
measure the pool at N replicas without a Ray cluster. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import gc
import logging
import signal

from serve_app.pool.clients import build_consume_loop
from serve_app.settings import load_settings


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    loop = build_consume_loop(load_settings())
    gc.freeze()  # as VotePersister does: docs/decisions/0014-pool-per-vote-cost.md
    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    signal.signal(signal.SIGINT, lambda *_: loop.stop())
    loop.run()


if __name__ == "__main__":
    main()
