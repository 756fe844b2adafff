"""XGBoost boosters saved as ``.json``, ``.ubj`` or legacy binary.

One FP32 ``[batch, n_features]`` input (XGBoost computes in float32; a config may type it FP64)
and one output, ``predict``: exactly what ``Booster.predict`` returns, i.e. probabilities for
classification objectives, not the class labels the scikit-learn wrapper derives from them.
Prediction uses ``inplace_predict``, which skips building a DMatrix per call.
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


class XGBoostPredictor(Predictor):
    batch_dim = True

    def __init__(self, booster: Any, input_meta: TensorMeta, output_name: str) -> None:
        self._booster = booster
        self.inputs = [input_meta]
        self._input_name = input_meta.name
        self._output_name = output_name
        # The output's trailing dims depend on the objective (binary, softprob, multi-target...);
        # one prediction on a row of zeros tells them without parsing the booster's config.
        probe = booster.inplace_predict(np.zeros((1, booster.num_features()), dtype=numpy_dtype(input_meta.datatype)))
        self.outputs = [TensorMeta(output_name, datatype_of(probe.dtype), (-1, *probe.shape[1:]))]

    def _predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {self._output_name: self._booster.inplace_predict(inputs[self._input_name])}


def load(model_dir: Path, config: ModelConfig | None, *, device: str = "cpu") -> XGBoostPredictor:
    """Load the booster; ``device="gpu"`` sets XGBoost's ``device=cuda``."""
    xgboost = import_framework("xgboost", "xgboost")
    path = find_model_file(
        model_dir, config, flavor="xgboost",
        default_names=["model.json", "model.ubj", "model.bst", "xgboost.model"],
        suffixes=[".json", ".ubj", ".bst"],
    )  # fmt: skip
    try:
        booster = xgboost.Booster(model_file=str(path))
    except xgboost.core.XGBoostError as exc:
        raise load_error(path, "an XGBoost model", exc) from None
    params: dict[str, Any] = {"device": "cuda" if device == "gpu" else "cpu"}
    threads = thread_count(config, device)
    if threads:
        params["nthread"] = threads
    booster.set_param(params)
    input_meta = tabular_input(config, "xgboost", "FP32", booster.num_features())
    return XGBoostPredictor(booster, input_meta, single_output_name(config, "xgboost"))
