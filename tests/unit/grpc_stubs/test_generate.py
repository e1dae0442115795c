"""The committed gRPC stubs are exactly what `make stubs` generates from proto/votes.proto."""

from __future__ import annotations

from pathlib import Path

from serve_app.grpc_stubs.generate import GENERATED, PACKAGE, ROOT, generate


def test_stubs_are_current(tmp_path: Path) -> None:
    generate(tmp_path)
    stale = [
        name
        for name in GENERATED
        if (tmp_path / PACKAGE / name).read_bytes() != (ROOT / PACKAGE / name).read_bytes()
    ]
    assert not stale, f"stale gRPC stubs {stale}: run `make stubs` and commit the result"


def test_proto_is_the_contracts() -> None:
    proto = (ROOT / "proto" / "votes.proto").read_text()
    assert "package votes.v1;" in proto
    for rpc in (
        "rpc Cast(Vote) returns (CastReply);",
        "rpc CastBatch(VoteBatch) returns (BatchReply);",
        "rpc GetResults(ResultsRequest) returns (Results);",
    ):
        assert rpc in proto


def test_the_bench_grpc_peer_implements_every_method_of_the_service() -> None:
    """The stubs have no servicer base class (generate.py): an implementation must define all
    methods itself, or add_VoteServiceServicer_to_server fails when the server starts."""
    from bench.peers.plain_grpc import VoteService
    from serve_app.grpc_stubs import votes_pb2 as pb
    from serve_app.ingress.deployment import VoteIngress

    methods = [m.name for m in pb.DESCRIPTOR.services_by_name["VoteService"].methods]
    assert methods == ["Cast", "CastBatch", "GetResults"]
    for implementation in (VoteService, VoteIngress.func_or_class):
        assert all(callable(getattr(implementation, name, None)) for name in methods), (
            implementation
        )
