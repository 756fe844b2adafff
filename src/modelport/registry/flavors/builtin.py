"""modelport's own flavors, each one :class:`~modelport.runtime.flavor_contract.Flavor`.

They are registered as outside flavors are (``modelport.flavors`` entry points, see
:mod:`modelport.runtime.flavor_catalog`). Detection is the format modules of this package;
loading is ``modelport.runtime.flavors.<name>``, named and imported only when a model is loaded.
Pickles are one format for four frameworks: each of them lists the same pickle detector, which
runs once and reports the framework the pickle's classes belong to (``pickle_modules``).
"""

from __future__ import annotations

from modelport.registry.flavors.mlflow import mlflow_model
from modelport.registry.flavors.onnx import onnx_file, onnx_model
from modelport.registry.flavors.pickles import pickled_model
from modelport.registry.flavors.pipelines import pipeline_file
from modelport.registry.flavors.scripts import python_file, python_folder
from modelport.registry.flavors.torch import torch_archive
from modelport.registry.flavors.trees import lightgbm_model, xgboost_model
from modelport.registry.flavors.triton import triton_repository
from modelport.runtime.config import TABULAR_MAX_BATCH_SIZE
from modelport.runtime.flavor_contract import Flavor

_PICKLES = frozenset({"pickle", "joblib"})

ONNX = Flavor(
    "onnx",
    loader="modelport.runtime.flavors.onnx:load",
    file_detectors=(onnx_file,),
    claim_file=onnx_model,
    formats=frozenset({"onnx"}),
    required="is not an ONNX model",
    triton_platform="onnxruntime_onnx",
    triton_backend="onnxruntime",
)
SKLEARN = Flavor(
    "sklearn",
    loader="modelport.runtime.flavors.sklearn:load",
    file_detectors=(pickled_model,),
    formats=_PICKLES,
    pickle_modules=frozenset({"sklearn"}),
    max_batch_size=TABULAR_MAX_BATCH_SIZE,
    tabular=True,
    extra="sklearn",
)
TORCH = Flavor(
    "torch",
    loader="modelport.runtime.flavors.torch:load",
    file_detectors=(torch_archive, pickled_model),
    formats=_PICKLES | {"torch-zip"},
    pickle_modules=frozenset({"torch"}),
    triton_platform="pytorch_libtorch",
    triton_backend="pytorch",
    extra="torch",
)
XGBOOST = Flavor(
    "xgboost",
    loader="modelport.runtime.flavors.xgboost:load",
    file_detectors=(pickled_model, xgboost_model),
    formats=_PICKLES | {"xgboost-json", "xgboost-ubj"},
    pickle_modules=frozenset({"xgboost"}),
    fil_model_types=frozenset({"xgboost", "xgboost_json", "xgboost_ubj"}),
    max_batch_size=TABULAR_MAX_BATCH_SIZE,
    tabular=True,
    extra="xgboost",
)
LIGHTGBM = Flavor(
    "lightgbm",
    loader="modelport.runtime.flavors.lightgbm:load",
    file_detectors=(pickled_model, lightgbm_model),
    formats=_PICKLES | {"lightgbm-text"},
    pickle_modules=frozenset({"lightgbm"}),
    fil_model_types=frozenset({"lightgbm"}),
    max_batch_size=TABULAR_MAX_BATCH_SIZE,
    tabular=True,
    extra="lightgbm",
)
MLFLOW = Flavor(
    "mlflow",
    loader="modelport.runtime.flavors.mlflow:load",
    folder_detectors=(mlflow_model,),
    formats=frozenset({"mlflow"}),
    required="is not an MLflow model folder (no MLmodel file)",
    extra="mlflow",
)
# Served by hosting the entry script, not by a predictor.
PYTHON = Flavor(
    "python",
    file_detectors=(python_file,),
    folder_detectors=(python_folder,),
    formats=frozenset({"python"}),
    required="has no entry script (score.py, or a .py file defining init() and run())",
)
# Served as the repository it is, each model in it by its own flavor.
TRITON = Flavor(
    "triton",
    folder_detectors=(triton_repository,),
    formats=frozenset({"triton"}),
    required="is not a Triton model repository (no <model>/<version>/ folders)",
)
# Registered models composed into one, served with the step versions pinned at registration.
PIPELINE = Flavor(
    "pipeline",
    file_detectors=(pipeline_file,),
    formats=frozenset({"pipeline"}),
    required="is not a pipeline file (a .yaml file with kind: pipeline)",
)
# Files modelport stores but does not serve: any content fits.
CUSTOM = Flavor("custom")
