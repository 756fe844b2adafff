"""One inference, independent of the wire: check the request against the model, run it, shape
the outputs (selection, classification), and account for it in the model's statistics.

HTTP and gRPC front ends both call :func:`infer`, so the rules live in one place. Inputs sent in
a datatype narrower than the model's are widened first (FP32 → FP64: :mod:`modelport.protocol.casts`).

A request of more rows than the model's ``max_batch_size`` is refused on the v2 routes, as Triton
refuses it (the limit is the model's promise about memory and latency, and a v2 client can split).
Azure ML's no-code ``/score`` takes a table of any length, so there :func:`infer` is asked to
``split``: the rows go through the model's scheduler in ``max_batch_size`` chunks, at most one per
instance at a time (a long table does not crowd out other requests), and the outputs are joined.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from modelport.core.datatypes import datatype_of
from modelport.core.errors import ModelportError, ValidationError
from modelport.monitor.trace import RequestTrace, current_trace
from modelport.protocol.casts import widen
from modelport.protocol.classification import classify
from modelport.protocol.types import InferenceRequest, InferenceResponse, InferOutput
from modelport.serving.batching import QueueRejected
from modelport.serving.model import Execution, Servable
from modelport.serving.stats import FailureReason


@contextmanager
def admitted(model: Servable) -> Iterator[None]:
    """A request from its decoding to its encoded answer: refused at once when the model's queue
    is full, counted in ``model.in_flight`` otherwise (the adaptive batcher sizes batches by it).

    The refusal comes before the body is decoded: under overload most requests are refused, and
    every microsecond a refusal costs is taken from the requests being served; decoding a JSON
    body first made refusals cost as much as answers (``bench/overload.py``)."""
    if model.batcher is not None and model.batcher.full:
        count_rejected(model)
        raise QueueRejected("Exceeds maximum queue size")
    model.in_flight += 1  # only ever touched on the event loop
    try:
        yield
    finally:
        model.in_flight -= 1


def count_rejected(model: Servable) -> None:
    """Count a request refused before it reached the model (Triton's REJECTED failure reason)."""
    model.stats.record_failure(FailureReason.REJECTED)


async def infer(model: Servable, request: InferenceRequest, *, split: bool = False) -> InferenceResponse:
    """Run ``request`` on ``model``; client mistakes raise ValidationError (400). ``split``: more
    rows than ``max_batch_size`` run in chunks rather than being refused."""
    start = time.perf_counter_ns()
    queue_ns = infer_ns = 0
    try:
        inputs = {
            tensor.name: widen(tensor.name, tensor.datatype, tensor.data, model.input_datatypes.get(tensor.name))
            for tensor in request.inputs
        }
        rows = _check_batch(model, inputs, split)
        prepared = time.perf_counter_ns()
        model.stats.pending += 1  # only ever touched on the event loop
        try:
            if rows > model.config.max_batch_size > 0:
                execution = await _execute_in_chunks(model, inputs, rows, request.id)
            else:
                execution = await model.execute(inputs, request.id)
        finally:
            model.stats.pending -= 1
        queue_ns, infer_ns = execution.queue_ns, execution.infer_ns
        shaped = time.perf_counter_ns()
        outputs = _outputs(model, request, execution.outputs)
        done = time.perf_counter_ns()
    except ModelportError as exc:
        model.stats.record_failure(_failure_reason(exc), time.perf_counter_ns() - start)
        trace = current_trace.get()
        if trace is not None:
            _note(trace, model, request, queue_ns, 0)
        raise
    model.stats.record_success(
        done - start, queue_ns=queue_ns, input_ns=prepared - start, infer_ns=infer_ns, output_ns=done - shaped
    )
    trace = current_trace.get()
    if trace is not None:
        _note(trace, model, request, execution.queue_ns, execution.batch_size)
        if trace.collect:
            trace.inputs, trace.outputs = inputs, {out.name: out.data for out in outputs}
    return InferenceResponse(model.name, model.version, request.id, outputs)


def _note(trace: RequestTrace, model: Servable, request: InferenceRequest, queue_ns: int, batch_size: int) -> None:
    trace.model, trace.version, trace.queue_ns, trace.batch_size = model.name, model.version, queue_ns, batch_size
    trace.request_id = trace.request_id or request.id or ""


def _check_batch(model: Servable, inputs: dict[str, np.ndarray], split: bool) -> int:
    """The request's rows (0 for a model without a batch dim)."""
    if not model.batched:
        return 0
    sizes = {array.shape[0] if array.ndim else 0 for array in inputs.values()}
    if len(sizes) > 1:
        raise ValidationError(f"inputs of model {model.name!r} disagree on the batch size: {sorted(sizes)}")
    size = sizes.pop() if sizes else 0
    limit = model.config.max_batch_size
    if size < 1:
        raise ValidationError(f"inference request batch-size must be >= 1 for {model.name!r} (got {size})")
    if size > limit and not split:
        raise ValidationError(
            f"inference request batch-size must be <= {limit} for {model.name!r} (got {size}): the model's "
            f"max_batch_size; send at most {limit} rows per request, or raise it with "
            f"--model-config '{{\"max_batch_size\": N}}' (model_config in a deployment)"
        )
    return size


def _failure_reason(exc: ModelportError) -> FailureReason:
    """Triton's reasons: a client's mistake is OTHER, a full queue REJECTED, what the model raised BACKEND."""
    if isinstance(exc, ValidationError):
        return FailureReason.OTHER
    return FailureReason.REJECTED if isinstance(exc, QueueRejected) else FailureReason.BACKEND


async def _execute_in_chunks(
    model: Servable, inputs: dict[str, np.ndarray], rows: int, request_id: str | None
) -> Execution:
    """``rows`` in ``max_batch_size`` chunks through the model's scheduler, as many at once as it
    has instances; the outputs joined in order. The first failure cancels the chunks not yet done."""
    size = model.config.max_batch_size
    window = asyncio.Semaphore(model.instance_count)

    async def chunk(start: int) -> Execution:
        async with window:
            return await model.execute(
                {name: array[start : start + size] for name, array in inputs.items()}, request_id
            )

    tasks = [asyncio.ensure_future(chunk(start)) for start in range(0, rows, size)]
    try:
        done = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    outputs = {name: np.concatenate([execution.outputs[name] for execution in done]) for name in done[0].outputs}
    return Execution(
        outputs, max(e.queue_ns for e in done), sum(e.infer_ns for e in done), max(e.batch_size for e in done)
    )


def _outputs(model: Servable, request: InferenceRequest, produced: dict[str, np.ndarray]) -> list[InferOutput]:
    if request.outputs is None:
        wanted = [(name, 0) for name in produced]
    else:
        wanted = [(out.name, out.class_count) for out in request.outputs]
    result = []
    for name, class_count in wanted:
        array = produced.get(name)
        if array is None:
            raise ValidationError(f"unexpected inference output {name!r} for model {model.name!r}")
        if class_count:
            array = classify(array, class_count, model.labels.get(name), batched=model.batched)
        result.append(InferOutput(name, datatype_of(array), tuple(array.shape), array))
    return result
