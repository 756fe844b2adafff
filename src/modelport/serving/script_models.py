"""Scoring scripts calling the models their server loads, in process (public face: ``modelport.models``).

Pre- and post-processing around a model usually means a ``score.py`` beside a separate model
server, with an HTTP hop and a JSON encoding per call. Here ``run()`` calls a model loaded by the
same ``modelport serve``, tensors in and tensors out. A call is an inference like any other: it
goes through :func:`modelport.serving.inference.infer` on the server's event loop, so it passes
the model's own scheduler (batched with the model's HTTP and gRPC requests, and with the calls of
the other ``run()`` s running at once under ``MODELPORT_CONCURRENCY``) and counts in the model's
statistics and metrics. Rows beyond ``max_batch_size`` go in chunks, as no-code ``/score`` does:
a script is not a v2 client that can split its table.

How a call reaches the loop depends on where it is made:

* ``infer()`` from ``run()``'s thread (or a script batcher's thread) hands the call to the
  server's loop and waits in short steps, so the scoring timeout's ``TimeoutError`` still lands;
* ``await infer_async()`` on the server's loop runs right there; on a loop of the script's own
  (``asyncio.run`` inside ``run()``, to call several models at once) it is handed over the same way;
* before the server serves (``init()``, warming up), a call runs on a loop of the caller's own:
  nothing else runs yet, and the batchers answer whichever loop queued a request.

Failures are :class:`ModelCallError`: one line naming the call, with the status the same request
would get over HTTP. A call leaves the ``/score`` request's trace alone: the request log and the
payload collector record what the script was asked and answered, not its model calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from modelport.core.datatypes import datatype_of
from modelport.core.errors import ModelportError, NotFoundError
from modelport.monitor.trace import current_trace
from modelport.protocol.types import InferenceRequest, InferInput, RequestedOutput
from modelport.serving.inference import admitted
from modelport.serving.inference import infer as infer_request
from modelport.serving.model import Servable
from modelport.serving.repository import ModelRepository

WAIT_STEP_S = 0.1  # how late a scoring timeout may land in a thread waiting for a model
T = TypeVar("T")


class ModelCallError(ModelportError):
    """A model call failed. ``http_status`` is what the same request would get over HTTP: 400 a
    bad input, 404 no such model, 503 a full queue or a server stopping, 500 the model failed."""

    def __init__(self, message: str, http_status: int = 500) -> None:
        super().__init__(message)
        self.http_status = http_status


class _Served:
    """What this process serves beside its script: the models, and the event loop that runs them
    once the server serves (None before: calls then run on the caller's loop)."""

    def __init__(self) -> None:
        self.repository: ModelRepository | None = None
        self.loop: asyncio.AbstractEventLoop | None = None


SERVED = _Served()


def attach(repository: ModelRepository | None) -> None:
    """Make ``repository``'s models callable from this process's script (before its ``init()``)."""
    SERVED.repository, SERVED.loop = repository, None


def serve_on(loop: asyncio.AbstractEventLoop) -> None:
    """Calls go to ``loop``, the one answering ``/score`` (told by the script host on each request)."""
    SERVED.loop = loop


# -- the API modelport.models re-exports -----------------------------------------------------------


def infer(
    model: str,
    inputs: Mapping[str, Any],
    outputs: Sequence[str] | None = None,
    version: str | int | None = None,
) -> dict[str, np.ndarray]:
    """Run ``model`` on ``inputs`` (input name → array) and return its outputs by name (``outputs``
    only, when given). Blocks the calling thread, never the server: call it from ``run()`` or
    ``init()``; on an event loop, ``await infer_async(...)`` instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise ModelCallError(
            f"models.infer({model!r}): called on a running event loop, which it would block; "
            "use await models.infer_async(...)"
        )
    call = _call(model, inputs, outputs, version)
    server = SERVED.loop
    if server is None:
        return asyncio.run(call)
    future = _hand_over(call, server, model)
    try:
        while True:
            done, _ = concurrent.futures.wait([future], timeout=WAIT_STEP_S)
            if done:
                return future.result()
    except BaseException:
        future.cancel()  # the scoring timeout (or anything else) interrupted the wait
        raise


async def infer_async(
    model: str,
    inputs: Mapping[str, Any],
    outputs: Sequence[str] | None = None,
    version: str | int | None = None,
) -> dict[str, np.ndarray]:
    """:func:`infer` for coroutines: ``await models.infer_async(...)``, from any event loop."""
    call = _call(model, inputs, outputs, version)
    server = SERVED.loop
    if server is None or server is asyncio.get_running_loop():
        return await call
    return await asyncio.wrap_future(_hand_over(call, server, model))


def metadata(model: str, version: str | int | None = None) -> dict[str, Any]:
    """The model's v2 metadata: ``name``, ``versions``, ``platform``, and its ``inputs`` and
    ``outputs`` with ``name``, ``datatype`` and ``shape`` (-1 first when the model batches)."""
    return _model(model, version).metadata()


# -- how a call runs -------------------------------------------------------------------------------


async def _call(
    name: str, inputs: Mapping[str, Any], outputs: Sequence[str] | None, version: str | int | None
) -> dict[str, np.ndarray]:
    """The call itself, on the loop that runs it: the same admission and rules as a v2 request."""
    model = _model(name, version)
    request = InferenceRequest(None, _tensors(name, inputs), _requested(name, outputs))
    trace = current_trace.set(None)
    try:
        with admitted(model):
            response = await infer_request(model, request, split=True)
    except ModelportError as exc:
        raise ModelCallError(f"models.infer({name!r}): {exc}", exc.http_status) from None
    finally:
        current_trace.reset(trace)
    return {output.name: output.data for output in response.outputs}


def _hand_over(
    call: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop, name: str
) -> concurrent.futures.Future[T]:
    try:
        return asyncio.run_coroutine_threadsafe(call, loop)
    except RuntimeError:  # the loop is closed: the server stopped
        call.close()
        raise ModelCallError(f"models.infer({name!r}): the server is stopping", 503) from None


def _model(name: str, version: str | int | None) -> Servable:
    repository = SERVED.repository
    if repository is None:
        raise ModelCallError(
            f"models: no model is loaded beside this script, so {name!r} cannot be called; name the models "
            "in the deployment's models: list, or as TARGETs of modelport serve",
            404,
        )
    try:
        return repository.get(name, None if version is None else str(version))
    except NotFoundError:
        loaded = ", ".join(f"{m.name}:{m.version}" for m in sorted(repository.loaded(), key=lambda m: m.name))
        wanted = f"{name!r}" if version is None else f"{name!r} version {version}"
        raise ModelCallError(
            f"models: no model {wanted} is loaded beside this script (loaded: {loaded or 'none'})", 404
        ) from None
    except ModelportError as exc:
        raise ModelCallError(f"models: {exc}", exc.http_status) from None


def _tensors(name: str, inputs: Mapping[str, Any]) -> list[InferInput]:
    if not isinstance(inputs, Mapping):
        raise ModelCallError(
            f"models.infer({name!r}): inputs must map input names to arrays, not a {type(inputs).__name__}", 400
        )
    tensors = []
    for key, value in inputs.items():
        array = np.asarray(value)
        try:
            datatype = datatype_of(array)
        except ModelportError as exc:
            raise ModelCallError(f"models.infer({name!r}): input {key!r}: {exc}", 400) from None
        tensors.append(InferInput(str(key), datatype, array.shape, array))
    return tensors


def _requested(name: str, outputs: Sequence[str] | None) -> list[RequestedOutput] | None:
    if outputs is None:
        return None
    if isinstance(outputs, str) or not all(isinstance(output, str) for output in outputs):
        raise ModelCallError(f"models.infer({name!r}): outputs must be a list of output names", 400)
    return [RequestedOutput(output) for output in outputs]
