"""Locust load test of votes: an HTTP voter and a gRPC voter, with an exact tally of accepted votes.

    .venv/bin/locust -f loadtest/locustfile.py --host http://127.0.0.1:8000   # web UI, both paths
    .venv/bin/locust -f loadtest/locustfile.py --headless -u 20 -r 5 -t 60s \\
        --host http://127.0.0.1:8000 --grpc-target 127.0.0.1:9000 --tags grpc  # gRPC only
    .venv/bin/python -m loadtest.run                            # headless + reconciliation

Choose the path with tags (`--tags http`, `--tags grpc`; also `single`, `batch`, `read`) or by
naming user classes (`HttpVoter`, `GrpcVoter`). Traffic: Guatemalan bands with Zipf-like
popularity (`loadtest.traffic`); single votes on `POST /insert` and its aliases `/rust/insert` and
`/grpc/insert` in the original all-strings format and on `POST /votes`, batches of 10-100 on
`POST /votes/batch`; gRPC `Cast` and `CastBatch`.

Every vote carries a client `vote_id` (uuid4). A request that fails in a way that may or may not
have reached Kafka (500, 503, 502/504 from a proxy, a connection error, a timeout; gRPC UNAVAILABLE,
RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN) is retried with the same vote_ids, with
backoff, until it is accepted or its deadline passes (loadtest/tally.py). Each attempt shows in
locust's statistics; the tally counts each vote once. At the end the tally is written as JSON to
`--tally-file` for `loadtest/run.py`:

    accepted   distinct votes the server acknowledged (must equal the increase of /results total)
    rejected   votes refused for good (4xx): they changed nothing
    in_doubt   votes given up after an ambiguous failure, or cut off by the end of the test:
               each may or may not be counted, so an exact reconciliation needs in_doubt == 0
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc.experimental import gevent as grpc_gevent
from locust import FastHttpUser, User, events, tag, task

from loadtest import outcomes, tally
from loadtest.traffic import Traffic
from serve_app.grpc_stubs import votes_pb2 as pb
from serve_app.grpc_stubs import votes_pb2_grpc as pb_grpc

# grpcio blocks the whole process under gevent unless told to cooperate; before any channel.
grpc_gevent.init_gevent()

# The original route and its aliases, the original contest's Ingress paths; each has its own stats.
INSERT_PATHS = ("/insert", "/rust/insert", "/grpc/insert")


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    parser.add_argument(
        "--grpc-target",
        default=os.environ.get("VOTES_GRPC_TARGET", "127.0.0.1:9000"),
        help="host:port of the gRPC API (default 127.0.0.1:9000)",
    )
    parser.add_argument(
        "--grpc-tls",
        action="store_true",
        default=False,
        help="connect to the gRPC API over TLS (e.g. an Ingress on :443)",
    )
    parser.add_argument(
        "--tally-file",
        default=os.environ.get("VOTES_TALLY_FILE", ""),
        help="write the vote tally (JSON) here when the test ends",
    )
    parser.add_argument(
        "--write-token",
        default=os.environ.get("VOTES_WRITE_TOKEN", ""),
        help="bearer token for write routes, when the deployment requires one",
        is_secret=True,
    )
    parser.add_argument(
        "--vote-deadline",
        type=float,
        default=30.0,
        help="seconds a vote keeps being retried before it is given up",
    )
    parser.add_argument(
        "--request-timeout", type=float, default=10.0, help="seconds one attempt may take"
    )
    parser.add_argument(
        "--think-time",
        type=float,
        default=0.5,
        help="mean seconds a user waits between tasks (0 = as fast as possible)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the traffic")


@events.test_start.add_listener
def _prune_idle_users(environment: Any, **_: Any) -> None:
    """`--tags http` leaves GrpcVoter without tasks (and vice versa): drop such classes."""
    kept = [cls for cls in environment.user_classes if cls.tasks]
    if kept and len(kept) != len(environment.user_classes):
        environment.user_classes[:] = kept
        if environment.runner is not None and hasattr(environment.runner, "user_classes"):
            environment.runner.user_classes[:] = kept


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


# ---- HTTP ------------------------------------------------------------------------------------


class HttpVoter(FastHttpUser):
    """A fan's browser or a relay posting votes over HTTP/JSON."""

    weight = 3
    connection_timeout = 10.0
    network_timeout = 10.0

    def wait_time(self) -> float:  # type: ignore[override]
        mean = (
            self.environment.parsed_options.think_time if self.environment.parsed_options else 0.5
        )
        return random.expovariate(1 / mean) if mean > 0 else 0.0

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.traffic = Traffic(
            None if options is None or options.seed is None else options.seed + id(self) % 10_000
        )
        self.deadline_s = options.vote_deadline if options else 30.0
        self.timeout_s = options.request_timeout if options else 10.0
        token = options.write_token if options else ""
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _post(self, path: str, body: dict[str, Any], votes: int, name: str) -> str:
        payload = json.dumps(body, ensure_ascii=False).encode()
        headers = self.headers | {"Content-Type": "application/json"}

        def attempt() -> tuple[str, float | None]:
            with self.client.post(
                path,
                data=payload,
                headers=headers,
                name=name,
                catch_response=True,
                timeout=self.timeout_s,
            ) as response:
                status = response.status_code
                if status == 202:
                    accepted = votes
                    if votes > 1:
                        accepted = int(response.json().get("accepted", -1))
                    if accepted != votes:
                        response.failure(f"accepted {accepted} of {votes}")
                        return tally.Outcome.RETRY, None
                    response.success()
                    return tally.Outcome.ACCEPTED, None
                retry_after = _retry_after(
                    response.headers.get("Retry-After") if response.headers else None
                )
                # status 0: connection error or timeout (FastHttpUser), ambiguous.
                if outcomes.failed_outcome(status) == tally.Outcome.RETRY:
                    response.failure(f"HTTP {status or 'connection error'}: retrying")
                    return tally.Outcome.RETRY, retry_after
                response.failure(f"HTTP {status}: {(response.text or '')[:200]}")
                return tally.Outcome.REJECTED, None

        return tally.send_with_retries(votes, attempt, self.deadline_s)

    @tag("http", "single")
    @task(6)
    def insert(self) -> None:
        """The original generators' routes and format: every field a string."""
        path = random.choice(INSERT_PATHS)
        self._post(path, self.traffic.vote(strings=True), 1, path)

    @tag("http", "single")
    @task(3)
    def vote(self) -> None:
        self._post("/votes", self.traffic.vote(), 1, "/votes")

    @tag("http", "batch")
    @task(1)
    def batch(self) -> None:
        votes = self.traffic.batch(self.traffic.batch_size())
        self._post("/votes/batch", {"votes": votes}, len(votes), "/votes/batch")

    @tag("http", "read")
    @task(1)
    def results(self) -> None:
        self.client.get("/results", name="/results", timeout=self.timeout_s)


# ---- gRPC ------------------------------------------------------------------------------------


class GrpcVoter(User):
    """A service casting votes over gRPC (votes.v1.VoteService), reported like any request."""

    weight = 1

    def wait_time(self) -> float:  # type: ignore[override]
        mean = (
            self.environment.parsed_options.think_time if self.environment.parsed_options else 0.5
        )
        return random.expovariate(1 / mean) if mean > 0 else 0.0

    def on_start(self) -> None:
        options = self.environment.parsed_options
        target = options.grpc_target if options else "127.0.0.1:9000"
        self.traffic = Traffic(
            None
            if options is None or options.seed is None
            else options.seed + 7 + id(self) % 10_000
        )
        self.deadline_s = options.vote_deadline if options else 30.0
        self.timeout_s = options.request_timeout if options else 10.0
        token = options.write_token if options else ""
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.channel = (
            grpc.secure_channel(target, grpc.ssl_channel_credentials())
            if options is not None and options.grpc_tls
            else grpc.insecure_channel(target)
        )
        self.stub = pb_grpc.VoteServiceStub(self.channel)

    def on_stop(self) -> None:
        self.channel.close()

    def _call(self, name: str, call: Callable[[], Any], size: Callable[[Any], int]) -> Any:
        """One RPC, fired as a locust request event; returns (reply, error)."""
        started = time.perf_counter()
        reply, error = None, None
        try:
            reply = call()
        except grpc.RpcError as exc:
            error = exc
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=size(reply) if reply is not None else 0,
            exception=None
            if error is None
            else RuntimeError(f"{error.code().name}: {error.details()}"),
            context={},
        )
        return reply, error

    def _cast(self, name: str, call: Callable[[], Any], votes: int) -> str:
        def attempt() -> tuple[str, float | None]:
            reply, error = self._call(name, call, lambda r: r.ByteSize())
            if error is None:
                accepted = votes if name == "Cast" else reply.accepted
                return (
                    (tally.Outcome.ACCEPTED, None)
                    if accepted == votes
                    else (tally.Outcome.RETRY, None)
                )
            return outcomes.failed_outcome(error.code().name), None

        return tally.send_with_retries(votes, attempt, self.deadline_s)

    @tag("grpc", "single")
    @task(8)
    def cast(self) -> None:
        vote = pb.Vote(**self.traffic.vote())
        self._cast(
            "Cast", lambda: self.stub.Cast(vote, timeout=self.timeout_s, metadata=self.metadata), 1
        )

    @tag("grpc", "batch")
    @task(1)
    def cast_batch(self) -> None:
        batch = pb.VoteBatch(
            votes=[
                pb.Vote(**v) for v in self.traffic.batch(self.traffic.batch_size(), strings=False)
            ]
        )
        # The proto has integer year/rank: the string format is an HTTP-only convenience.
        self._cast(
            "CastBatch",
            lambda: self.stub.CastBatch(batch, timeout=self.timeout_s, metadata=self.metadata),
            len(batch.votes),
        )

    @tag("grpc", "read")
    @task(1)
    def results(self) -> None:
        self._call(
            "GetResults",
            lambda: self.stub.GetResults(pb.ResultsRequest(), timeout=self.timeout_s),
            lambda r: r.ByteSize(),
        )
