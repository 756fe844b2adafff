"""``inference.GRPCInferenceService``: the repository and ``infer`` behind Triton's RPCs.

The servicer only translates: protobuf in, :mod:`modelport.protocol.types` to
:func:`modelport.serving.inference.infer` (where every inference rule lives), protobuf out.
Errors a client caused (:class:`ModelportError`) end the RPC with the gRPC status matching their
HTTP status and their one-line message; anything else is a bug, logged with its traceback and
answered INTERNAL naming the RPC, model and request id, and the server keeps serving. Bytes that
do not parse as the RPC's request message are the client's mistake too (INVALID_ARGUMENT).
:mod:`.transport` carries the calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from modelport.core.errors import ModelportError, ValidationError
from modelport.core.version import __version__
from modelport.serving.grpc.codec import decode_request, encode_response
from modelport.serving.grpc.stubs import methods, pb2
from modelport.serving.grpc.transport import CompletionQueueServer
from modelport.serving.inference import admitted, infer
from modelport.serving.model import Servable
from modelport.serving.repository import ModelRepository

log = logging.getLogger(__name__)

Message = Any  # protobuf messages of a private pool: no static types to name

_STATUS_BY_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


def status_of(error: ModelportError) -> grpc.StatusCode:
    """The gRPC status for an error's HTTP status: other 4xx are INVALID_ARGUMENT, 5xx INTERNAL."""
    status = _STATUS_BY_HTTP.get(error.http_status)
    if status is not None:
        return status
    return grpc.StatusCode.INTERNAL if error.http_status >= 500 else grpc.StatusCode.INVALID_ARGUMENT


def _failure(rpc: str, request: Message | None, error: Exception) -> tuple[grpc.StatusCode, str]:
    """Status and one-line message for an error raised while serving ``request`` (None: not parsed)."""
    if isinstance(error, ModelportError):
        return status_of(error), error.message
    if isinstance(error, DecodeError):
        return grpc.StatusCode.INVALID_ARGUMENT, f"{rpc}: the request is not a valid protobuf message"
    model = getattr(request, "model_name", "") or getattr(request, "name", "")
    request_id = getattr(request, "id", "") or "-"
    log.error("gRPC %s failed for model %r request %s", rpc, model, request_id, exc_info=error)
    detail = " ".join(f"{type(error).__name__}: {error}".split())
    return grpc.StatusCode.INTERNAL, f"{rpc} failed for model {model!r} request {request_id}: {detail}"


class InferenceServicer:
    """The RPCs of ``grpc_service.proto``; method names are the RPC names. A unary method takes
    the parsed request and returns the response; what it raises becomes the status (:func:`_failure`)."""

    def __init__(self, repository: ModelRepository, extensions: list[str]) -> None:
        self._repository = repository
        self._extensions = list(extensions)

    # ----------------------------------------------------------------- health and metadata

    async def ServerLive(self, request: Message) -> Message:
        return pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Message) -> Message:
        return pb2.ServerReadyResponse(ready=self._repository.ready)

    async def ModelReady(self, request: Message) -> Message:
        return pb2.ModelReadyResponse(ready=self._repository.is_ready(request.name, request.version or None))

    async def ServerMetadata(self, request: Message) -> Message:
        return pb2.ServerMetadataResponse(name="modelport", version=__version__, extensions=self._extensions)

    async def ModelMetadata(self, request: Message) -> Message:
        model = self._repository.get(request.name, request.version or None)
        return json_format.ParseDict(model.metadata(), pb2.ModelMetadataResponse(), ignore_unknown_fields=True)

    async def ModelConfig(self, request: Message) -> Message:
        """Triton's JSON config parsed into the proto; modelport-only keys have no field and drop out."""
        model = self._repository.get(request.name, request.version or None)
        response = pb2.ModelConfigResponse()
        json_format.ParseDict(model.config.to_dict(), response.config, ignore_unknown_fields=True)
        return response

    async def ModelStatistics(self, request: Message) -> Message:
        response = pb2.ModelStatisticsResponse()
        for model in self._stats_models(request.name, request.version or None):
            json_format.ParseDict(model.stats.to_dict(), response.model_stats.add())
        return response

    def _stats_models(self, name: str, version: str | None) -> list[Servable]:
        """No name: every loaded model; a name without version: its loaded versions."""
        if name and version:
            return [self._repository.get(name, version)]
        models = [m for m in self._repository.loaded() if not name or m.name == name]
        if name and not models:
            models = [self._repository.get(name)]  # raises the not-found / not-ready error
        return sorted(models, key=lambda m: (m.name, int(m.version)))

    # ----------------------------------------------------------------- inference

    async def ModelInfer(self, request: Message) -> Message:
        model = self._repository.get(request.model_name, request.model_version or None)
        with admitted(model):
            return encode_response(await infer(model, decode_request(request)))

    async def ModelStreamInfer(self, requests: AsyncIterator[Message]) -> AsyncIterator[Message]:
        """Requests run concurrently, as separate ModelInfer calls would, so the model's
        scheduler sees them together; responses come back in completion order with their id.
        A failed request answers ``error_message`` and the stream goes on, as in Triton."""
        finished: asyncio.Queue[Message | None] = asyncio.Queue()

        async def answer(request: Message) -> None:
            finished.put_nowait(await self._stream_response(request))

        async def read() -> None:
            running: set[asyncio.Task[None]] = set()
            try:
                async for request in requests:
                    task = asyncio.create_task(answer(request))
                    running.add(task)
                    task.add_done_callback(running.discard)
                if running:
                    await asyncio.wait(running)
            finally:
                for task in running:
                    task.cancel()
                finished.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (response := await finished.get()) is not None:
                yield response
            await reader  # a broken request stream surfaces here
        finally:
            reader.cancel()

    async def _stream_response(self, request: Message) -> Message:
        try:
            return pb2.ModelStreamInferResponse(infer_response=await self.ModelInfer(request))
        except Exception as error:  # noqa: BLE001 - reported in-band, bugs logged in _failure
            _, message = _failure("ModelStreamInfer", request, error)
            echo = pb2.ModelInferResponse(  # lets a client match the error to its request
                model_name=request.model_name, model_version=request.model_version, id=request.id
            )
            return pb2.ModelStreamInferResponse(error_message=message, infer_response=echo)

    # ----------------------------------------------------------------- repository

    async def RepositoryIndex(self, request: Message) -> Message:
        response = pb2.RepositoryIndexResponse()
        for entry in self._repository.index(ready_only=request.ready):
            response.models.add(**entry)
        return response

    async def RepositoryModelLoad(self, request: Message) -> Message:
        """(Re)load from the model's source; Triton's config/file overrides are not supported."""
        if request.parameters:
            key = sorted(request.parameters)[0]
            raise ValidationError(f"load {request.model_name!r}: parameter {key[:40]!r} is not supported")
        await asyncio.to_thread(self._repository.load, request.model_name)  # loading blocks
        return pb2.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request: Message) -> Message:
        """``unload_dependents`` is accepted and moot: no modelport model depends on another."""
        await asyncio.to_thread(self._repository.unload, request.model_name)  # waits for in-flight runs
        return pb2.RepositoryModelUnloadResponse()


@dataclass(frozen=True)
class GrpcServer:
    """A started server and the port it bound (the real one when 0 was asked for)."""

    server: CompletionQueueServer
    port: int

    async def stop(self, grace: float | None = None) -> None:
        await self.server.stop(grace)


async def start_grpc_server(
    repository: ModelRepository,
    host: str,
    port: int,
    extensions: list[str],
    max_message_bytes: int,
    *,
    reuse_port: bool = False,
) -> GrpcServer:
    """Bind ``host:port`` (0 picks a free port), start serving, return the server and its port.

    ``extensions`` is what ServerMetadata advertises, the HTTP server's list, so both front ends
    describe the same server. ``max_message_bytes`` caps requests and responses alike.
    ``reuse_port`` lets the workers of ``serve --workers N`` share the port (the kernel spreads
    connections over them); otherwise a busy port must fail, not silently share traffic.
    """
    server = CompletionQueueServer(
        methods(InferenceServicer(repository, extensions)),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ],
        on_error=_failure,
    )
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    try:
        bound = server.bind(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise ModelportError(f"gRPC server: cannot listen on {address} (port in use or address not local)")
    server.start()
    return GrpcServer(server, bound)
