"""The messages and the service registration of ``grpc_service.proto``, compiled at import time.

No generated code is committed: the ``.proto`` files beside this module are the source of truth,
and ``grpc_tools.protoc`` turns them into a ``FileDescriptorSet`` the first time a given version
of them is imported (cached under ``<tempdir>/modelport-grpc-<hash>/``).

**A private descriptor pool.** tritonclient registers Triton's full ``inference.*`` messages in
protobuf's default descriptor pool; ours are a subset under the same fully qualified names
(they must be: ``inference.GRPCInferenceService`` and its method paths are the wire contract).
The default pool refuses a second definition of a name, so any process that imports both —
the tests, a client embedded in an application that also serves — would fail at import. Our
descriptors therefore live in a ``DescriptorPool`` of their own and message classes come from
``message_factory.GetMessageClass``; only field numbers and types travel on the wire, and those
are Triton's, so clients cannot tell. The same choice rules out protoc's ``*_pb2.py`` modules,
which always register in the default pool, and means the cache holds data, never Python code
imported from a world-writable temp directory.

``pb2`` gives the message classes by name (``pb2.ModelInferRequest``); :func:`add_servicer`
plays the part of the generated ``*_pb2_grpc.add_..._to_server``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import modelport

SERVICE = "inference.GRPCInferenceService"
# Proto imports are written relative to the folder holding the ``modelport`` package, so the
# file names in the pool (``modelport/serving/grpc/...``) cannot be mistaken for Triton's.
_PROTO_ROOT = Path(modelport.__file__).resolve().parent.parent
_PROTOS = ("modelport/serving/grpc/model_config.proto", "modelport/serving/grpc/grpc_service.proto")


def _compile(cache_file: Path) -> bytes:
    """Run protoc in-process; publish the result atomically for later imports, if we may."""
    from grpc_tools import protoc  # only needed when the cache is cold

    with tempfile.TemporaryDirectory(prefix="modelport-grpc-") as private:
        out = Path(private) / cache_file.name
        status = protoc.main(
            [
                "protoc",
                f"--proto_path={_PROTO_ROOT}",
                f"--descriptor_set_out={out}",
                "--include_imports",
                _PROTOS[-1],
            ]
        )
        if status != 0:
            raise RuntimeError(f"protoc failed ({status}) on {_PROTO_ROOT / _PROTOS[-1]}; see stderr")
        data = out.read_bytes()
        try:  # a cache dir another user owns is not an error, just no cache for us
            cache_file.parent.mkdir(mode=0o755, exist_ok=True)
            staged = cache_file.with_name(f".{cache_file.name}.{os.getpid()}")
            staged.write_bytes(data)
            os.replace(staged, cache_file)
        except OSError:
            pass
    return data


def _descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    digest = hashlib.sha256()
    for name in _PROTOS:
        digest.update((_PROTO_ROOT / name).read_bytes())
    cache_file = Path(tempfile.gettempdir()) / f"modelport-grpc-{digest.hexdigest()[:16]}" / "descriptors.pb"
    try:
        data = cache_file.read_bytes()
    except OSError:
        data = _compile(cache_file)
    return descriptor_pb2.FileDescriptorSet.FromString(data)


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for file in _descriptor_set().file:  # --include_imports lists dependencies first
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


_HANDLER_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_servicer(servicer: object, server: grpc.aio.Server) -> None:
    """Route every RPC of the service to the servicer's method of the same name."""
    service = _POOL.FindServiceByName(SERVICE)
    handlers = {}
    for method in service.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        make = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
