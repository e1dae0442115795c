"""What the load generators send: pre-encoded vote bodies (HTTP) and messages (gRPC).

Encoded once before the load starts, so that the client measures the server, not itself.
"""

from __future__ import annotations

import itertools
import json

from loadtest.traffic import Traffic


class Bodies:
    """Pre-encoded request bodies of realistic votes; singles get a unique vote_id each."""

    def __init__(
        self,
        kind: str,
        run_tag: str,
        seed: int = 7,
        pool: int = 512,
        batch_size: int = 1000,
        batches: int = 8,
    ) -> None:
        traffic = Traffic(seed)
        self.kind = kind
        self._ids = itertools.count()
        self._tag = run_tag
        if kind == "single":
            # Everything but the closing `"}` of vote_id, which is filled in per request.
            self._singles = [
                (
                    json.dumps(traffic.vote(vote_id=False), ensure_ascii=False)[:-1]
                    + ',"vote_id":"'
                ).encode()
                for _ in range(pool)
            ]
            self.votes = 1
        else:  # a batch: the server assigns the vote_ids, as a relay of anonymous votes would
            self._batches = [
                json.dumps(
                    {"votes": traffic.batch(batch_size, vote_id=False)},
                    ensure_ascii=False,
                    separators=(",", ":"),
                ).encode()
                for _ in range(batches)
            ]
            self.votes = batch_size

    def next(self) -> bytes:
        n = next(self._ids)
        if self.kind == "single":
            return self._singles[n % len(self._singles)] + f'{self._tag}-{n}"}}'.encode()
        return self._batches[n % len(self._batches)]


class GrpcMessages:
    """Pre-serialised Vote / VoteBatch messages (sent as bytes: no per-call proto building)."""

    def __init__(
        self,
        kind: str,
        run_tag: str,
        seed: int = 7,
        pool: int = 512,
        batch_size: int = 1000,
        batches: int = 8,
    ) -> None:
        from serve_app.grpc_stubs import votes_pb2 as pb

        traffic = Traffic(seed)
        self.kind = kind
        self._ids = itertools.count()
        self._tag = run_tag
        if kind == "single":
            self._singles = [
                pb.Vote(**traffic.vote(vote_id=False)).SerializeToString() for _ in range(pool)
            ]
            self.votes = 1
        else:
            self._batches = [
                pb.VoteBatch(
                    votes=[
                        pb.Vote(**v)
                        for v in traffic.batch(batch_size, strings=False, vote_id=False)
                    ]
                ).SerializeToString()
                for _ in range(batches)
            ]
            self.votes = batch_size

    def next(self) -> bytes:
        n = next(self._ids)
        if self.kind == "single":
            vote_id = f"{self._tag}-{n}".encode()
            # Field 5 (vote_id), wire type 2: appended fields are valid protobuf.
            return self._singles[n % len(self._singles)] + b"\x2a" + bytes([len(vote_id)]) + vote_id
        return self._batches[n % len(self._batches)]
