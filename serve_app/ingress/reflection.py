"""gRPC server reflection v1 next to the v1alpha that Ray Serve offers.

Ray Serve 2.60 registers `grpc.reflection.v1alpha.ServerReflection` on every gRPC server it starts
(the Python proxy's, and in HAProxy mode each ingress replica's own), when
`grpc_options.enable_reflection` is on (the default). grpcio-reflection 1.85 has no v1 servicer,
and clients that speak only `grpc.reflection.v1` find no reflection there.

v1's reflection.proto is v1alpha's with another package name: the same messages, the same bytes on
the wire. So `add_reflection_v1_to_server`, listed in config.yaml's `grpc_servicer_functions`,
registers v1's method on the same server and hands each call to the v1alpha servicer that Serve
registers there: both versions answer the same, list the same services, and are off together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2

if TYPE_CHECKING:
    from ray.serve._private.grpc_util import gRPCGenericServer

V1ALPHA_PACKAGE = "grpc.reflection.v1alpha"
V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE = f"{V1_PACKAGE}.ServerReflection"
V1ALPHA_METHOD = f"/{V1ALPHA_PACKAGE}.ServerReflection/ServerReflectionInfo"


def _v1_file(pool: descriptor_pool.DescriptorPool) -> FileDescriptor:
    """v1's reflection.proto in `pool`, derived from v1alpha's (added unless already there), so
    that reflection can describe the v1 service it lists."""
    try:
        return pool.FindFileContainingSymbol(V1_SERVICE)
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    v1alpha_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = V1_PACKAGE
    # v1alpha's options mark the file deprecated and name v1alpha's Java and Go packages.
    proto.ClearField("options")
    old, new = f".{V1ALPHA_PACKAGE}.", f".{V1_PACKAGE}."
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):  # set only on message fields
                field.type_name = field.type_name.replace(old, new, 1)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new, 1)
            method.output_type = method.output_type.replace(old, new, 1)
    pool.Add(proto)
    return pool.FindFileByName(proto.name)


# The pool grpcio-reflection's servicer describes symbols from.
V1_FILE = _v1_file(descriptor_pool.Default())


class _Lookup(grpc.HandlerCallDetails):
    """The call details a generic handler needs to say whether it serves a method."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


# A stream-stream method of the asyncio server Serve runs: async iterators in and out.
ReflectionStream = Callable[
    [AsyncIterator[v1alpha_pb2.ServerReflectionRequest], grpc.aio.ServicerContext[Any, Any]],
    AsyncIterator[v1alpha_pb2.ServerReflectionResponse],
]


def _v1alpha_stream(server: gRPCGenericServer) -> ReflectionStream | None:
    """Serve's v1alpha reflection method on `server`, or None when reflection is off."""
    lookup = _Lookup(V1ALPHA_METHOD)
    for handlers in server.generic_rpc_handlers:
        for handler in handlers:
            found = handler.service(lookup)
            if found is not None:
                stream: ReflectionStream = found.stream_stream  # type: ignore[assignment]  # grpc's stub types the sync server's handlers
                return stream
    return None


def add_reflection_v1_to_server(_servicer: Any, server: gRPCGenericServer) -> None:
    """A gRPC servicer function for Serve: `grpc.reflection.v1.ServerReflection` on `server`.

    Serve calls it with a placeholder servicer before it adds its own v1alpha reflection, which
    is why the v1alpha handler is looked up when a call comes, not now.
    """

    async def server_reflection_info(
        requests: AsyncIterator[v1alpha_pb2.ServerReflectionRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[v1alpha_pb2.ServerReflectionResponse]:
        v1alpha = _v1alpha_stream(server)
        if v1alpha is None:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                "server reflection is off (grpc_options.enable_reflection)",
            )
        async for response in v1alpha(requests, context):
            yield response

    handlers = {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            server_reflection_info,
            request_deserializer=v1alpha_pb2.ServerReflectionRequest.FromString,
            response_serializer=v1alpha_pb2.ServerReflectionResponse.SerializeToString,
        ),
    }
    # Passthrough: the server answers it itself; Serve would send any other call to a replica.
    server.add_passthrough_service(V1_SERVICE)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(V1_SERVICE, handlers),))
    server.add_registered_method_handlers(V1_SERVICE, handlers)
