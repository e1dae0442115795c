"""Server reflection v1 and v1alpha on the gRPC server Serve starts, in-process, without Ray.

`start_grpc_server` is what Serve's Python proxy and, in HAProxy mode, every ingress replica run
with config.yaml's grpc_options; tests/e2e/test_reflection.py asks the deployed app.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import descriptor_pb2
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2
from ray.serve._private.grpc_util import start_grpc_server
from ray.serve.config import gRPCOptions

from devkit.net import free_port
from serve_app.ingress import reflection
from tests.conftest import ROOT

V1_REQUEST = GetMessageClass(reflection.V1_FILE.message_types_by_name["ServerReflectionRequest"])
V1_RESPONSE = GetMessageClass(reflection.V1_FILE.message_types_by_name["ServerReflectionResponse"])
# Per version: the method's path and its messages (v1's are built from v1's own descriptor).
VERSIONS = {
    "v1": ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", V1_REQUEST, V1_RESPONSE),
    "v1alpha": (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        v1alpha_pb2.ServerReflectionRequest,
        v1alpha_pb2.ServerReflectionResponse,
    ),
}
SERVICES = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "votes.v1.VoteService",
]


@asynccontextmanager
async def serve_grpc(enable_reflection: bool = True) -> AsyncIterator[grpc.aio.Channel]:
    """Serve's gRPC server with config.yaml's servicer functions; a channel to it."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())["grpc_options"]
    options = gRPCOptions(
        port=free_port(),
        enable_reflection=enable_reflection,
        grpc_servicer_functions=config["grpc_servicer_functions"],
    )
    # VoteService's calls would go to replicas; none is made here.
    task, server = await start_grpc_server(
        lambda **_: None, options, event_loop=asyncio.get_running_loop()
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{options.port}") as channel:
            yield channel
    finally:
        await server.stop(None)
        await task


async def ask(channel: grpc.aio.Channel, version: str, **request: Any) -> Any:
    path, request_type, response_type = VERSIONS[version]
    call = channel.stream_stream(
        path,
        request_serializer=request_type.SerializeToString,
        response_deserializer=response_type.FromString,
    )
    responses = [response async for response in call(iter([request_type(**request)]), timeout=10)]
    (response,) = responses
    assert response.DESCRIPTOR.full_name == response_type.DESCRIPTOR.full_name
    return response


@pytest.mark.parametrize("version", VERSIONS)
def test_both_versions_list_the_same_services(version: str) -> None:
    async def listed() -> list[str]:
        async with serve_grpc() as channel:
            response = await ask(channel, version, list_services="")
            return [service.name for service in response.list_services_response.service]

    assert asyncio.run(listed()) == SERVICES


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("symbol", "package"),
    [
        ("votes.v1.VoteService", "votes.v1"),
        ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1"),
        ("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1alpha"),
    ],
)
def test_both_versions_describe_every_listed_service(
    version: str, symbol: str, package: str
) -> None:
    async def described() -> descriptor_pb2.FileDescriptorProto:
        async with serve_grpc() as channel:
            response = await ask(channel, version, file_containing_symbol=symbol)
            first = response.file_descriptor_response.file_descriptor_proto[0]
            return descriptor_pb2.FileDescriptorProto.FromString(first)

    file = asyncio.run(described())
    assert file.package == package
    assert symbol.rpartition(".")[2] in [service.name for service in file.service]


def test_reflection_off_turns_off_both_versions() -> None:
    async def codes() -> list[grpc.StatusCode]:
        found = []
        async with serve_grpc(enable_reflection=False) as channel:
            for version in VERSIONS:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await ask(channel, version, list_services="")
                found.append(info.value.code())
        return found

    assert asyncio.run(codes()) == [grpc.StatusCode.UNIMPLEMENTED] * 2
