"""The soak's locust users: the HTTP and gRPC voters of loadtest/locustfile.py at a fixed rate.

Run by loadtest/soak.py (`locust -f loadtest/soak_locustfile.py --tags single ...`), which sets:

    VOTES_SOAK_HTTP_USERS, VOTES_SOAK_HTTP_USER_RATE   HTTP voters, and votes/s each
    VOTES_SOAK_GRPC_USERS, VOTES_SOAK_GRPC_USER_RATE   gRPC voters, and votes/s each

Each voter sends at a constant throughput (locust's constant_throughput: a task every 1/rate s,
sooner never), so the total rate is users x rate per path as long as a vote takes less than 1/rate.
Everything else (the vote_ids, retries with the same ids, the tally written to --tally-file)
is loadtest/locustfile.py's: it is imported as a module, so its event listeners and command-line
options apply, and only the two classes below are user classes of this locustfile.
"""

from __future__ import annotations

import os

from locust import constant_throughput

import loadtest.locustfile as voters


def _count(name: str) -> int:
    return int(os.environ.get(name, "0") or 0)


def _rate(name: str) -> float:
    value = float(os.environ.get(name, "1") or 1)
    if value <= 0:
        raise ValueError(f"{name} must be a positive number of votes per second, not {value}")
    return value


class SoakHttpVoter(voters.HttpVoter):
    fixed_count = _count("VOTES_SOAK_HTTP_USERS")
    wait_time = constant_throughput(_rate("VOTES_SOAK_HTTP_USER_RATE"))


class SoakGrpcVoter(voters.GrpcVoter):
    fixed_count = _count("VOTES_SOAK_GRPC_USERS")
    wait_time = constant_throughput(_rate("VOTES_SOAK_GRPC_USER_RATE"))
