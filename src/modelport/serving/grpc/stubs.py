"""The messages and the service registration of ``grpc_service.proto``.

The ``.proto`` files beside this module are the source of truth; ``scripts/gen_grpc.py``
compiles them into :mod:`.descriptors` (a serialized ``FileDescriptorSet``), which ships with the
package, so an install needs neither protoc nor a compile step, and a test checks that the two
still match.

**A private descriptor pool.** tritonclient registers Triton's full ``inference.*`` messages in
protobuf's default descriptor pool; ours are a subset under the same fully qualified names
(they must be: ``inference.GRPCInferenceService`` and its method paths are the wire contract).
The default pool refuses a second definition of a name, so any process that imports both —
the tests, a client embedded in an application that also serves — would fail at import. Our
descriptors therefore live in a ``DescriptorPool`` of their own and message classes come from
``message_factory.GetMessageClass``; only field numbers and types travel on the wire, and those
are Triton's, so clients cannot tell. The same choice rules out protoc's ``*_pb2.py`` modules,
which always register in the default pool.

``pb2`` gives the message classes by name (``pb2.ModelInferRequest``); :func:`methods`
plays the part of the generated ``*_pb2_grpc.add_..._to_server``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from modelport.serving.grpc.descriptors import SERIALIZED, SOURCES
from modelport.serving.grpc.transport import Method

SERVICE = "inference.GRPCInferenceService"
# File names in the pool (``modelport/serving/grpc/...``) cannot be mistaken for Triton's.
_PROTOS = tuple(SOURCES)


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(SERIALIZED).file:  # dependencies first
        pool.Add(file)
    return pool


_POOL = _build_pool()


def _message_classes() -> SimpleNamespace:
    classes: dict[str, Any] = {}
    for name in _PROTOS:
        for message in _POOL.FindFileByName(name).message_types_by_name.values():
            classes[message.name] = message_factory.GetMessageClass(message)
    return SimpleNamespace(**classes)


pb2: Any = _message_classes()
"""Every top-level message of both protos, by name; nested ones hang off their parent."""


def methods(servicer: object) -> dict[str, Method]:
    """Every RPC of the service, by its path, routed to the servicer's method of the same name.

    Unary RPCs and the one bidirectional stream (``ModelStreamInfer``) are all the service has."""
    routes = {}
    for method in _POOL.FindServiceByName(SERVICE).methods:
        if method.client_streaming != method.server_streaming:
            raise TypeError(f"{method.full_name}: half-streaming RPCs are not served")
        request = message_factory.GetMessageClass(method.input_type)
        routes[f"/{SERVICE}/{method.name}"] = Method(
            method.name, request.FromString, getattr(servicer, method.name), streaming=method.client_streaming
        )
    return routes
