"""Completing a model's config from the loaded model, as Triton auto-completes a config.

Apart from :mod:`.config` because it reads the :class:`~modelport.runtime.predictor.Predictor`
contract, which itself is built from a config: the config module stays free of the model side
and the two do not import each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelport.core.errors import ValidationError
from modelport.runtime import flavor_catalog
from modelport.runtime.config import (
    DEFAULT_MAX_BATCH_SIZE,
    DynamicBatching,
    ModelConfig,
    TensorConfig,
)

if TYPE_CHECKING:
    from modelport.runtime.predictor import Predictor, TensorMeta


def complete_config(
    config: ModelConfig | None,
    predictor: Predictor,
    *,
    name: str | None = None,
    flavor: str | None = None,
) -> ModelConfig:
    """Fill a config from what the loaded model says about itself, as Triton auto-completes.

    Missing inputs/outputs come from the model's metadata. A model whose every tensor starts
    with a variable dim is batchable: an unset (0) ``max_batch_size`` becomes
    the flavor's own default (``Flavor.max_batch_size``: Triton FIL's 32768 for sklearn, XGBoost
    and LightGBM), else :data:`DEFAULT_MAX_BATCH_SIZE`, with a default ``dynamic_batching``, unless the configured
    tensors spell out the full rank (then dim 0 is theirs and nothing is batched), as Triton's
    onnxruntime backend does. Configured tensors must exist in the model with the same
    datatype and compatible dims. An empty ``preferred_batch_size`` becomes
    ``[max_batch_size]``, Triton's normalization. ``name``/``flavor`` are used when
    ``config`` is None (a config-less model folder).
    """
    if config is None:
        if name is None:
            raise TypeError("complete_config needs a name when there is no config")
        config = ModelConfig(name=name, flavor=flavor)
    elif config.flavor is None and flavor is not None:
        config = config.replace(flavor=flavor)
    model = {"input": predictor.inputs, "output": predictor.outputs}
    configured = {"input": config.inputs, "output": config.outputs}

    max_batch_size = config.max_batch_size
    dynamic_batching = config.dynamic_batching
    if max_batch_size > 0 and not predictor.batch_dim:
        raise ValidationError(
            f"max_batch_size: {max_batch_size}, but model {config.name!r} has no variable batch "
            "dim 0 on every input and output; set max_batch_size: 0"
        )
    if max_batch_size == 0 and predictor.batch_dim and not _spells_full_rank(configured, model):
        max_batch_size = flavor_catalog.default_max_batch_size(config.flavor) or DEFAULT_MAX_BATCH_SIZE
        if dynamic_batching is None:
            dynamic_batching = DynamicBatching()
    if dynamic_batching is not None and max_batch_size == 0:
        raise ValidationError("dynamic_batching: needs max_batch_size > 0")
    if dynamic_batching is not None and not dynamic_batching.preferred_batch_size:
        dynamic_batching = dynamic_batching.replace(preferred_batch_size=(max_batch_size,))

    strip = 1 if max_batch_size > 0 else 0
    completed: dict[str, list[TensorConfig]] = {}
    for kind in ("input", "output"):
        if configured[kind]:
            _check_against_model(kind, configured[kind], model[kind], strip)
            completed[kind] = configured[kind]
        else:
            completed[kind] = [
                TensorConfig(name=m.name, datatype=m.datatype, dims=tuple(m.shape[strip:])) for m in model[kind]
            ]
    return config.replace(
        inputs=completed["input"],
        outputs=completed["output"],
        max_batch_size=max_batch_size,
        dynamic_batching=dynamic_batching,
    )


def _spells_full_rank(configured: dict[str, list[TensorConfig]], model: dict[str, list[TensorMeta]]) -> bool:
    for kind, tensors in configured.items():
        shapes = {meta.name: meta.shape for meta in model[kind]}
        if any(t.name in shapes and len(t.dims) == len(shapes[t.name]) for t in tensors):
            return True
    return False


def _check_against_model(kind: str, tensors: list[TensorConfig], metas: list[TensorMeta], strip: int) -> None:
    by_name = {meta.name: meta for meta in metas}
    for index, tensor in enumerate(tensors):
        meta = by_name.get(tensor.name)
        field_path = f"{kind}[{index}]"
        if meta is None:
            known = ", ".join(by_name) or "none"
            raise ValidationError(f"{field_path}.name: the model has no {kind} {tensor.name!r} (it has {known})")
        if tensor.datatype != meta.datatype:
            raise ValidationError(
                f"{field_path}.data_type: {tensor.datatype}, but the model's {kind} {tensor.name!r} is {meta.datatype}"
            )
        model_dims = tuple(meta.shape[strip:])
        compatible = len(tensor.dims) == len(model_dims) and all(
            m == -1 or c == m for c, m in zip(tensor.dims, model_dims)
        )
        if not compatible:
            raise ValidationError(
                f"{field_path}.dims: {list(tensor.dims)} does not fit the model's {kind} {tensor.name!r} "
                f"with dims {list(model_dims)}" + (" (after the batch dim)" if strip else "")
            )
