"""MLflow models through ``mlflow.pyfunc``, whatever framework is inside.

Tensors are described by the config when it lists them, else by the model's signature: a
tensor-based signature maps one to one, a column-based one makes each column a ``[batch]``
input (fed to the model as one DataFrame) and each output column an output. A model with
neither cannot be described and is refused at load time rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.core.datatypes import datatype_of
from modelport.core.errors import ModelportError, ValidationError
from modelport.runtime.config import ModelConfig, TensorConfig
from modelport.runtime.flavors import import_framework, load_error
from modelport.runtime.predictor import Predictor, TensorMeta, numpy_dtype


class MLflowPredictor(Predictor):
    def __init__(self, model: Any, inputs: list[TensorMeta], outputs: list[TensorMeta], input_form: str) -> None:
        self._model = model
        self.inputs = inputs
        self.outputs = outputs
        self.batch_dim = all(meta.shape and meta.shape[0] == -1 for meta in inputs + outputs)
        self._input_form = input_form  # "frame" (columns), "array" (one unnamed tensor) or "dict"
        self._output_dtypes = [(meta.name, numpy_dtype(meta.datatype)) for meta in outputs]

    def _predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._input_form == "frame":
            import pandas

            model_input: Any = pandas.DataFrame({meta.name: inputs[meta.name] for meta in self.inputs})
        elif self._input_form == "array":
            model_input = inputs[self.inputs[0].name]
        else:
            model_input = dict(inputs)
        return self._split(self._model.predict(model_input))

    def _split(self, result: Any) -> dict[str, np.ndarray]:
        """Map what pyfunc returns (array, Series, DataFrame, dict, list) onto the outputs."""
        if isinstance(result, Mapping):
            arrays = [result.get(name) for name, _ in self._output_dtypes]
        elif hasattr(result, "columns") and len(self._output_dtypes) > 1:
            arrays = [result[name].to_numpy() if name in result.columns else None for name, _ in self._output_dtypes]
        elif hasattr(result, "to_numpy"):
            arrays = [result.to_numpy()]
        else:
            arrays = [result]
        if len(arrays) != len(self._output_dtypes) or any(a is None for a in arrays):
            names = ", ".join(name for name, _ in self._output_dtypes)
            raise ModelportError(f"the MLflow model's result does not provide the outputs {names}")
        return {name: np.asarray(a, dtype=dtype) for (name, dtype), a in zip(self._output_dtypes, arrays)}


def load(model_dir: Path, config: ModelConfig | None, *, device: str = "cpu") -> MLflowPredictor:
    """``mlflow.pyfunc.load_model`` on the folder holding ``MLmodel``; ``device`` is up to the model."""
    mlflow_pyfunc = import_framework("mlflow.pyfunc", "mlflow")
    try:
        model = mlflow_pyfunc.load_model(str(model_dir))
    except Exception as exc:  # MLflow raises MlflowException, OSError, or the flavor's own errors
        raise load_error(model_dir, "an MLflow model", exc) from None
    metadata = getattr(model, "metadata", None)
    input_schema = metadata.get_input_schema() if metadata is not None else None
    output_schema = metadata.get_output_schema() if metadata is not None else None
    if config is not None and config.inputs:
        inputs = _from_config(config.inputs, config)
    elif input_schema is not None:
        inputs = _from_schema(input_schema, model_dir, "input")
    else:
        raise ValidationError(f"{model_dir}: the MLflow model has no signature; list its inputs in a config")
    if config is not None and config.outputs:
        outputs = _from_config(config.outputs, config)
    elif output_schema is not None:
        outputs = _from_schema(output_schema, model_dir, "output")
    else:
        raise ValidationError(f"{model_dir}: the MLflow model has no output signature; list its outputs in a config")
    if input_schema is not None and not input_schema.is_tensor_spec():
        input_form = "frame"
    elif len(inputs) == 1 and (input_schema is None or not input_schema.has_input_names()):
        input_form = "array"
    else:
        input_form = "dict"
    return MLflowPredictor(model, inputs, outputs, input_form)


def _from_config(tensors: list[TensorConfig], config: ModelConfig) -> list[TensorMeta]:
    lead = (-1,) if config.max_batch_size > 0 else ()
    return [TensorMeta(t.name, t.datatype, lead + t.dims) for t in tensors]


def _from_schema(schema: Any, model_dir: Path, kind: str) -> list[TensorMeta]:
    """TensorSpecs keep their dtype and shape; ColSpecs become ``[batch]`` tensors.
    Unnamed entries are called ``input-0``/``output-0``..., the v2 default names."""
    metas = []
    for index, spec in enumerate(schema.inputs):
        name = spec.name or f"{kind}-{index}"
        if schema.is_tensor_spec():
            shape = tuple(-1 if dim is None or dim < 0 else dim for dim in spec.shape)
            metas.append(TensorMeta(name, datatype_of(spec.type), shape))
            continue
        to_numpy = getattr(spec.type, "to_numpy", None)
        if to_numpy is None:  # Array/Object/Map column types have no flat tensor form
            raise ValidationError(f"{model_dir}: signature {kind} {name!r} of type {spec.type} cannot be a tensor")
        metas.append(TensorMeta(name, datatype_of(to_numpy()), (-1,)))
    return metas
