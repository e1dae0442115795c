"""gRPC server reflection on the deployed app: v1 and v1alpha list and describe
votes.v1.VoteService.

grpcio-reflection has client stubs for v1alpha only; v1's call is made with messages built from
v1's descriptor (serve_app/ingress/reflection.py). The same server setup without Ray:
tests/unit/ingress/test_reflection.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc as v1alpha_pb2_grpc

from serve_app.ingress import reflection
from tests.conftest import Pipeline

pytestmark = pytest.mark.e2e

V1_REQUEST = GetMessageClass(reflection.V1_FILE.message_types_by_name["ServerReflectionRequest"])
V1_RESPONSE = GetMessageClass(reflection.V1_FILE.message_types_by_name["ServerReflectionResponse"])
V1_METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


@pytest.fixture(scope="module")
def channel(pipeline: Pipeline) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(pipeline.grpc_target) as channel:
        yield channel


def ask(channel: grpc.Channel, version: str, **request: Any) -> Any:
    """One reflection request through `version`'s service; its one response."""
    if version == "v1":
        call = channel.stream_stream(
            V1_METHOD,
            request_serializer=V1_REQUEST.SerializeToString,
            response_deserializer=V1_RESPONSE.FromString,
        )
        (response,) = call(iter([V1_REQUEST(**request)]), timeout=15)
    else:
        stub = v1alpha_pb2_grpc.ServerReflectionStub(channel)
        (response,) = stub.ServerReflectionInfo(
            iter([v1alpha_pb2.ServerReflectionRequest(**request)]), timeout=15
        )
    return response


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_lists_and_describes_the_vote_service(
    channel: grpc.Channel, version: str
) -> None:
    listed = ask(channel, version, list_services="").list_services_response.service
    assert sorted(service.name for service in listed) == [
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "votes.v1.VoteService",
    ]

    response = ask(channel, version, file_containing_symbol="votes.v1.VoteService")
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]
    (service,) = [s for f in files if f.package == "votes.v1" for s in f.service]
    assert [m.name for m in service.method] == ["Cast", "CastBatch", "GetResults"]
