"""The committed gRPC stubs are exactly what `make stubs` generates from proto/votes.proto."""

from __future__ import annotations

from pathlib import Path

from serve_app.grpc_stubs.generate import GENERATED, PACKAGE, ROOT, generate


def test_stubs_are_current(tmp_path: Path) -> None:
    generate(tmp_path)
    stale = [
        name for name in GENERATED
        if (tmp_path / PACKAGE / name).read_bytes() != (ROOT / PACKAGE / name).read_bytes()
    ]
    assert not stale, f"stale gRPC stubs {stale}: run `make stubs` and commit the result"


def test_proto_is_the_contracts() -> None:
    proto = (ROOT / "proto" / "votes.proto").read_text()
    assert "package votes.v1;" in proto
    for rpc in ("rpc Cast(Vote) returns (CastReply);",
                "rpc CastBatch(VoteBatch) returns (BatchReply);",
                "rpc GetResults(ResultsRequest) returns (Results);"):
        assert rpc in proto
