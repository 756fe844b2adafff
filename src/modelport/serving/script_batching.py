"""Dynamic batching for scoring scripts that declare themselves batchable.

A script opts in by setting ``MODELPORT_MAX_BATCH_SIZE = N`` beside ``init()`` and ``run()``:
then ``run`` is called with a *list* of request bodies (and, if it takes ``request_headers``, a
list of header dicts) and returns a list with one answer per body, in order, as Ray Serve's
``@serve.batch`` functions do. The requests are queued and formed into batches by the same
scheduler as models (Triton's ``dynamic_batching`` semantics, or the adaptive
``latency_budget_ms``); ``MODELPORT_DYNAMIC_BATCHING`` may set those fields, otherwise
whatever is queued when ``run`` is free goes as one batch.

Only a ``run(data)`` that takes the request body can batch: a ``@rawhttp`` run answers with its
own response object per request and an ``@input_schema`` run is converted per request by the
decorator, so neither has a list form.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from modelport.core.errors import ModelportError, ValidationError
from modelport.runtime.config import DynamicBatching, config_from_dict
from modelport.serving.batching import DynamicBatcher, ItemParts, Runner

SIZE_ATTRIBUTE = "MODELPORT_MAX_BATCH_SIZE"
SETTINGS_ATTRIBUTE = "MODELPORT_DYNAMIC_BATCHING"


def script_batcher(
    module: ModuleType, script: Path, run_kind: str, concurrency: int, runner: Runner
) -> DynamicBatcher | None:
    """The batcher a batchable script's requests go through, or None when it does not batch.

    Raises ValidationError naming the attribute when the declaration cannot be honoured."""
    size: Any = getattr(module, SIZE_ATTRIBUTE, None)
    settings: Any = getattr(module, SETTINGS_ATTRIBUTE, None)
    if size is None:
        if settings is not None:
            raise ValidationError(f"scoring script {script}: {SETTINGS_ATTRIBUTE} needs {SIZE_ATTRIBUTE} as well")
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValidationError(f"scoring script {script}: {SIZE_ATTRIBUTE} must be an integer >= 1, got {size!r}")
    if run_kind != "string":
        raise ValidationError(
            f"scoring script {script}: {SIZE_ATTRIBUTE} needs run(data) to take the request "
            f"body; a {run_kind} run() is called once per request"
        )
    batching = _settings(settings or {}, script)
    return DynamicBatcher(batching, size, concurrency, runner, parts=ItemParts(), name=script.stem)


def _settings(data: object, script: Path) -> DynamicBatching:
    try:
        config = config_from_dict({"name": "score", "dynamic_batching": data}, SETTINGS_ATTRIBUTE)
    except ModelportError as exc:
        raise ValidationError(f"scoring script {script}: {exc}") from None
    assert config.dynamic_batching is not None
    return config.dynamic_batching
