"""scikit-learn estimators and pipelines saved with joblib or pickle.

The model takes one ``[batch, n_features]`` input (``input-0``, FP64 unless the config names
and types it) and offers one output per prediction method, named after the method as
MLServer's sklearn runtime does: ``predict`` and, for classifiers that have it,
``predict_proba``. A config that lists outputs computes only those, which halves the work
when only labels are wanted. Loading unpickles the file, which runs code from it: serve only
models from a registry you trust.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.core.datatypes import datatype_of
from modelport.core.errors import ValidationError
from modelport.runtime.config import ModelConfig
from modelport.runtime.flavors import DEFAULT_OUTPUT, find_model_file, import_framework, load_error, tabular_input
from modelport.runtime.predictor import Predictor, TensorMeta, numpy_dtype

_PROBA = "predict_proba"


class SklearnPredictor(Predictor):
    batch_dim = True

    def __init__(self, estimator: Any, input_meta: TensorMeta, outputs: list[TensorMeta]) -> None:
        self._estimator = estimator
        self.inputs = [input_meta]
        self.outputs = outputs
        self._input_name = input_meta.name
        # (name, bound method, dtype): the output is cast to its declared dtype, a no-op when it already is
        self._methods = [(m.name, getattr(estimator, m.name), numpy_dtype(m.datatype)) for m in outputs]
        self._columns = _frame_columns(estimator)

    def _predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        features: Any = inputs[self._input_name]
        if self._columns is not None:  # fitted on a DataFrame: keep its column names and avoid warnings
            features = self._columns[0](features, columns=self._columns[1])
        return {name: np.asarray(method(features), dtype=dtype) for name, method, dtype in self._methods}


def load(model_dir: Path, config: ModelConfig | None, *, device: str = "cpu") -> SklearnPredictor:
    """Unpickle the estimator; ``device`` is ignored (scikit-learn runs on the CPU)."""
    joblib = import_framework("joblib", "sklearn")
    import_framework("sklearn", "sklearn")  # unpickling needs it; fail with the install hint first
    path = find_model_file(
        model_dir, config, flavor="sklearn",
        default_names=["model.joblib", "model.pkl", "model.pickle"],
        suffixes=[".joblib", ".pkl", ".pickle"],
    )  # fmt: skip
    try:
        estimator = joblib.load(path)
    except Exception as exc:  # unpickling raises anything the pickled classes raise
        raise load_error(path, "a scikit-learn model", exc) from None
    if not callable(getattr(estimator, "predict", None)):
        raise ValidationError(f"{path}: holds a {type(estimator).__name__}, which has no predict method")
    input_meta = tabular_input(config, "sklearn", "FP64", getattr(estimator, "n_features_in_", None))
    return SklearnPredictor(estimator, input_meta, _outputs(estimator, config, path))


def _outputs(estimator: Any, config: ModelConfig | None, path: Path) -> list[TensorMeta]:
    """What each method returns: labels in the dtype of ``classes_`` (FP64 for regressors),
    probabilities as FP64 ``[batch, n_classes]``. A configured datatype wins (e.g. INT32 for
    a clusterer's labels)."""
    classes = getattr(estimator, "classes_", None)
    n_outputs = getattr(estimator, "n_outputs_", 1)
    if isinstance(classes, np.ndarray):
        label_datatype = datatype_of(classes.dtype)
    elif isinstance(classes, list):  # multi-output classifier: one array of classes per output
        label_datatype = datatype_of(np.result_type(*(c.dtype for c in classes)))
    else:
        label_datatype = "FP64"
    label_shape = (-1,) if n_outputs == 1 else (-1, n_outputs)
    available = {DEFAULT_OUTPUT: TensorMeta(DEFAULT_OUTPUT, label_datatype, label_shape)}
    if isinstance(classes, np.ndarray) and hasattr(estimator, _PROBA):
        available[_PROBA] = TensorMeta(_PROBA, "FP64", (-1, len(classes)))
    if config is None or not config.outputs:
        return list(available.values())
    chosen = []
    for index, tensor in enumerate(config.outputs):
        if tensor.name not in available:
            raise ValidationError(
                f"output[{index}].name: {tensor.name!r} is not an output of {path.name} "
                f"(it offers {', '.join(available)})"
            )
        chosen.append(TensorMeta(tensor.name, tensor.datatype, available[tensor.name].shape))
    return chosen


def _frame_columns(estimator: Any) -> tuple[Any, list[str]] | None:
    """(DataFrame class, column names) when the estimator was fitted on named columns and pandas is here."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return None
    try:
        import pandas
    except ImportError:
        return None
    return pandas.DataFrame, list(names)
