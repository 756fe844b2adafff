"""LightGBM boosters saved as text model files (``Booster.save_model``).

One FP64 ``[batch, n_features]`` input (LightGBM's split thresholds are doubles, so float32
input could fall on the other side of a split than training data did; a config may type it
FP32) and one FP64 output, ``predict``: what ``Booster.predict`` returns, ``[batch]`` or
``[batch, n_classes]`` for multiclass objectives.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.core.datatypes import datatype_of
from modelport.runtime.config import ModelConfig
from modelport.runtime.flavors import (
    find_model_file,
    import_framework,
    load_error,
    single_output_name,
    tabular_input,
    thread_count,
)
from modelport.runtime.predictor import Predictor, TensorMeta, numpy_dtype


class LightGBMPredictor(Predictor):
    batch_dim = True

    def __init__(self, booster: Any, input_meta: TensorMeta, output_name: str, threads: int | None) -> None:
        self._booster = booster
        self.inputs = [input_meta]
        self._input_name = input_meta.name
        self._output_name = output_name
        self._options = {"num_threads": threads} if threads else {}
        probe = booster.predict(np.zeros((1, booster.num_feature()), dtype=numpy_dtype(input_meta.datatype)))
        self.outputs = [TensorMeta(output_name, datatype_of(probe.dtype), (-1, *probe.shape[1:]))]

    def _predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {self._output_name: self._booster.predict(inputs[self._input_name], **self._options)}


def load(model_dir: Path, config: ModelConfig | None, *, device: str = "cpu") -> LightGBMPredictor:
    """Load the booster; ``device`` is ignored (LightGBM's CUDA build only speeds up training)."""
    lightgbm = import_framework("lightgbm", "lightgbm")
    path = find_model_file(
        model_dir, config, flavor="lightgbm",
        default_names=["model.txt", "model.lgb", "lightgbm.model"],
        suffixes=[".txt", ".lgb", ".lgbm"],
    )  # fmt: skip
    try:
        booster = lightgbm.Booster(model_file=str(path))
    except lightgbm.basic.LightGBMError as exc:
        raise load_error(path, "a LightGBM model", exc) from None
    input_meta = tabular_input(config, "lightgbm", "FP64", booster.num_feature())
    output_name = single_output_name(config, "lightgbm")
    return LightGBMPredictor(booster, input_meta, output_name, thread_count(config, device))
