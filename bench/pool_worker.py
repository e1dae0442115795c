"""One consumer of the pool, outside Ray: `serve_app.pool.deployment.BatchPersister.run()` in a process.

    VOTES_KAFKA_TOPIC=... VOTES_KAFKA_CONSUMER_GROUP=... .venv/bin/python -m bench.pool_worker

This is the exact loop a `VotePersister` replica runs on its background thread (Serve only starts,
health-checks and scales the replica; it is not on the consume path), so N of these processes
measure the pool at N replicas without a Ray cluster. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import logging
import signal

from serve_app.pool.deployment import BatchPersister
from serve_app.settings import load_settings


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    persister = BatchPersister(load_settings())
    signal.signal(signal.SIGTERM, lambda *_: persister.stop())
    signal.signal(signal.SIGINT, lambda *_: persister.stop())
    persister.run()


if __name__ == "__main__":
    main()
