"""Flavors behind the Predictor contract: each loads a real model trained with a fixed seed and
predicts exactly what its framework predicts in-process; bad input fails with a named reason."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from modelport.core.errors import ModelportError, ValidationError
from modelport.runtime import (
    DynamicBatching,
    InstanceGroup,
    ModelConfig,
    TensorConfig,
    TensorMeta,
    complete_config,
    load_predictor,
)
from modelport.runtime.config import TABULAR_MAX_BATCH_SIZE
from modelport.samples import build_mlp_onnx

MLP_SIZES = (32, 64, 4)  # float32, ReLU, dynamic batch dim, fixed seed


def save_fixed_batch_copy(source: Path, target: Path, batch: int) -> None:
    """The same model with dim 0 pinned to ``batch``: a model that cannot be batched."""
    model = onnx.load(str(source))
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_value = batch
    onnx.save(model, str(target))


def mlp_in_numpy(path: Path, x: np.ndarray) -> np.ndarray:
    """The sample MLP (Gemm, ReLU, Gemm) recomputed from its own weights."""
    weights = {init.name: numpy_helper.to_array(init) for init in onnx.load(str(path)).graph.initializer}
    hidden = np.maximum(x @ weights["W0"] + weights["B0"], 0)
    return hidden @ weights["W1"] + weights["B1"]


def features(rows: int, columns: int, dtype: type = np.float32, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, columns)).astype(dtype)


@pytest.fixture
def mlp_dir(tmp_path: Path) -> Path:
    build_mlp_onnx(tmp_path / "mlp" / "model.onnx", sizes=MLP_SIZES)
    return tmp_path / "mlp"


# --------------------------------------------------------------------------- onnx


def test_onnx_predicts_bit_for_bit_what_onnxruntime_does(mlp_dir: Path) -> None:
    x = features(7, 32)
    reference = ort.InferenceSession(str(mlp_dir / "model.onnx")).run(None, {"input": x})[0]

    with load_predictor("onnx", mlp_dir, None) as predictor:
        assert predictor.inputs == [TensorMeta("input", "FP32", (-1, 32))]
        assert predictor.outputs == [TensorMeta("output", "FP32", (-1, 4))]
        assert predictor.batch_dim is True
        result = predictor.predict({"input": x})

    assert list(result) == ["output"]
    assert result["output"].dtype == np.float32
    assert np.array_equal(result["output"], reference)
    np.testing.assert_allclose(result["output"], mlp_in_numpy(mlp_dir / "model.onnx", x), rtol=1e-4, atol=1e-5)


def test_onnx_model_without_config_is_completed_as_triton_would(mlp_dir: Path) -> None:
    predictor = load_predictor("onnx", mlp_dir, None)
    config = complete_config(None, predictor, name="mlp", flavor="onnx")

    rendered = config.to_dict()
    assert rendered["name"] == "mlp"
    assert rendered["platform"] == "onnxruntime_onnx"
    assert rendered["max_batch_size"] == 4
    assert rendered["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [32]}]
    assert rendered["output"] == [{"name": "output", "data_type": "TYPE_FP32", "dims": [4]}]
    assert rendered["dynamic_batching"]["preferred_batch_size"] == [4]
    assert rendered["instance_group"] == [{"count": 1, "kind": "KIND_CPU"}]


def test_onnx_config_is_checked_against_the_model(mlp_dir: Path) -> None:
    predictor = load_predictor("onnx", mlp_dir, None)
    config = ModelConfig("mlp", max_batch_size=8, inputs=[TensorConfig("input", "FP32", (16,))])
    with pytest.raises(ValidationError, match=r"input\[0\].dims: \[16\] does not fit the model's input 'input'"):
        complete_config(config, predictor)
    config = ModelConfig("mlp", max_batch_size=8, outputs=[TensorConfig("scores", "FP32", (4,))])
    with pytest.raises(ValidationError, match=r"output\[0\].name: the model has no output 'scores' \(it has output\)"):
        complete_config(config, predictor)


def test_onnx_fixed_batch_model_has_no_batch_dim(mlp_dir: Path, tmp_path: Path) -> None:
    save_fixed_batch_copy(mlp_dir / "model.onnx", tmp_path / "fixed.onnx", batch=2)
    predictor = load_predictor("onnx", tmp_path / "fixed.onnx", None)

    assert (predictor.batch_dim, predictor.inputs[0].shape) == (False, (2, 32))
    assert complete_config(None, predictor, name="fixed").max_batch_size == 0
    with pytest.raises(ValidationError, match=r"input 'input': shape \[3, 32\] does not match the model's \[2, 32\]"):
        predictor.predict({"input": features(3, 32)})


def test_onnx_session_follows_threads_and_device(mlp_dir: Path) -> None:
    config = ModelConfig(
        "mlp",
        instance_group=[InstanceGroup(count=2, kind="cpu", threads=2)],
        parameters={"inter_op_thread_count": "3"},
    )
    predictor = load_predictor("onnx", mlp_dir, config)
    options = predictor._session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 3)

    by_parameter = load_predictor("onnx", mlp_dir, ModelConfig("mlp", parameters={"intra_op_thread_count": "1"}))
    assert by_parameter._session.get_session_options().intra_op_num_threads == 1

    cores = len(os.sched_getaffinity(0))
    shared = load_predictor("onnx", mlp_dir, ModelConfig("mlp", instance_group=[InstanceGroup(count=2)]))
    shared_options = shared._session.get_session_options()
    assert shared_options.intra_op_num_threads == max(1, cores // 2)  # the instances split the cores
    assert shared_options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    spinning = load_predictor("onnx", mlp_dir, ModelConfig("mlp", parameters={"allow_spinning": "true"}))
    with pytest.raises(RuntimeError, match="does not have configuration"):  # left to onnxruntime: it spins
        spinning._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    gpu = load_predictor("onnx", mlp_dir, None, device="gpu")
    expected = ["CUDAExecutionProvider"] if "CUDAExecutionProvider" in ort.get_available_providers() else []
    assert gpu._session.get_providers() == [*expected, "CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, r"input 'input': missing \(the model takes input\)"),
        ({"input": features(2, 32), "z": features(2, 1)}, r"input 'z': not an input of this model \(it takes input\)"),
        ({"input": features(2, 32, np.float64)}, r"input 'input': datatype is FP64, but the model expects FP32"),
        ({"input": np.array([["a"] * 32])}, r"input 'input': datatype is BYTES, but the model expects FP32"),
        ({"input": features(2, 31)}, r"input 'input': shape \[2, 31\] does not match the model's \[-1, 32\]"),
        ({"input": features(2, 32)[None]}, r"input 'input': shape \[1, 2, 32\] does not match the model's \[-1, 32\]"),
        ({"input": [[0.0] * 32]}, r"input 'input': expected a numpy array, got list"),
    ],
)
def test_bad_inputs_are_rejected_naming_the_input(mlp_dir: Path, inputs: dict, message: str) -> None:
    predictor = load_predictor("onnx", mlp_dir, None)
    with pytest.raises(ValidationError, match=f"^{message}$"):
        predictor.predict(inputs)


def test_model_file_is_found_or_the_folder_explained(tmp_path: Path) -> None:
    build_mlp_onnx(tmp_path / "a.onnx", sizes=MLP_SIZES)
    assert load_predictor("onnx", tmp_path, None).outputs[0].name == "output"  # the single *.onnx
    assert load_predictor("onnx", tmp_path / "a.onnx", None).inputs[0].name == "input"  # a file directly

    build_mlp_onnx(tmp_path / "b.onnx", sizes=MLP_SIZES)
    with pytest.raises(ValidationError, match=r"several onnx model files \(a.onnx, b.onnx\); name one"):
        load_predictor("onnx", tmp_path, None)
    chosen = ModelConfig("m", default_model_filename="b.onnx")
    assert load_predictor("onnx", tmp_path, chosen).batch_dim
    with pytest.raises(ValidationError, match=r"default_model_filename: .*c.onnx does not exist"):
        load_predictor("onnx", tmp_path, ModelConfig("m", default_model_filename="c.onnx"))

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError, match=r"no onnx model file found \(looked for model.onnx or one \*.onnx"):
        load_predictor("onnx", tmp_path / "empty", None)
    (tmp_path / "empty" / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(ValidationError, match=r"model.onnx: cannot be loaded as an ONNX model \(.*\)$"):
        load_predictor("onnx", tmp_path / "empty", None)


def test_registry_rejects_unknown_flavors_devices_and_paths(mlp_dir: Path) -> None:
    with pytest.raises(ValidationError, match=r"flavor: 'tensorflow' is not known; use one of onnx, sklearn"):
        load_predictor("tensorflow", mlp_dir, None)
    with pytest.raises(ValidationError, match=r"device: 'tpu' is not known"):
        load_predictor("onnx", mlp_dir, None, device="tpu")
    with pytest.raises(ValidationError, match=r"missing: does not exist"):
        load_predictor("onnx", mlp_dir / "missing", None)


@pytest.mark.parametrize(("flavor", "module"), [("xgboost", "xgboost"), ("lightgbm", "lightgbm"), ("torch", "torch")])
def test_missing_framework_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flavor: str, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ModelportError, match=rf"pip install 'modelport\[{flavor}\]'"):
        load_predictor(flavor, tmp_path, None)


# --------------------------------------------------------------------------- scikit-learn


def classification_data(classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    return make_classification(
        n_samples=200, n_features=6, n_informative=4, n_classes=classes, random_state=0
    )  # fmt: skip


def test_sklearn_classifier_predicts_what_sklearn_does(tmp_path: Path) -> None:
    import joblib
    from sklearn.linear_model import LogisticRegression

    x, y = classification_data()
    model = LogisticRegression(max_iter=500, random_state=0).fit(x, y)
    joblib.dump(model, tmp_path / "model.joblib")

    predictor = load_predictor("sklearn", tmp_path, None)
    assert predictor.inputs == [TensorMeta("input-0", "FP64", (-1, 6))]
    assert predictor.outputs == [
        TensorMeta("predict", "INT64", (-1,)),
        TensorMeta("predict_proba", "FP64", (-1, 3)),
    ]
    result = predictor.predict({"input-0": x[:25]})
    assert np.array_equal(result["predict"], model.predict(x[:25]))
    assert np.array_equal(result["predict_proba"], model.predict_proba(x[:25]))

    config = complete_config(None, predictor, name="iris", flavor="sklearn")
    assert (config.max_batch_size, config.backend) == (TABULAR_MAX_BATCH_SIZE, "sklearn")
    assert [(t.name, t.dims) for t in config.outputs] == [("predict", ()), ("predict_proba", (3,))]


def test_sklearn_config_names_the_input_and_selects_outputs(tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    x, y = classification_data(classes=2)
    labels = np.array(["legit", "fraud"])[y]
    model = DecisionTreeClassifier(max_depth=4, random_state=0).fit(x.astype(np.float32), labels)
    with (tmp_path / "model.pkl").open("wb") as file:
        pickle.dump(model, file)
    config = ModelConfig(
        "fraud",
        inputs=[TensorConfig("features", "FP32", (6,))],
        outputs=[TensorConfig("predict", "BYTES", ())],
        max_batch_size=16,
    )

    predictor = load_predictor("sklearn", tmp_path, config)
    assert predictor.inputs == [TensorMeta("features", "FP32", (-1, 6))]
    assert predictor.outputs == [TensorMeta("predict", "BYTES", (-1,))]
    result = predictor.predict({"features": x[:10].astype(np.float32)})
    assert result["predict"].dtype == object
    assert list(result["predict"]) == list(model.predict(x[:10].astype(np.float32)))
    assert complete_config(config, predictor).max_batch_size == 16

    with pytest.raises(ValidationError, match=r"input 'features': datatype is FP64, but the model expects FP32"):
        predictor.predict({"features": x[:10]})
    wrong = ModelConfig("fraud", outputs=[TensorConfig("decision_function", "FP64", ())])
    with pytest.raises(ValidationError, match=r"output\[0\].name: 'decision_function' is not an output of model.pkl"):
        load_predictor("sklearn", tmp_path, wrong)


def test_sklearn_regressor_predicts_what_sklearn_does(tmp_path: Path) -> None:
    import joblib
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 5))
    y = np.column_stack([x @ rng.standard_normal(5), np.sin(x[:, 0])])
    model = RandomForestRegressor(n_estimators=10, random_state=0).fit(x, y)
    joblib.dump(model, tmp_path / "regressor.joblib")

    predictor = load_predictor("sklearn", tmp_path, None)
    assert predictor.outputs == [TensorMeta("predict", "FP64", (-1, 2))]
    assert np.array_equal(predictor.predict({"input-0": x[:9]})["predict"], model.predict(x[:9]))


def test_sklearn_model_fitted_on_a_dataframe_keeps_its_column_names(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    import joblib
    from sklearn.linear_model import LinearRegression

    x = features(50, 3, np.float64)
    frame = pandas.DataFrame(x, columns=["age", "income", "tenure"])
    model = LinearRegression().fit(frame, x @ np.array([1.0, 2.0, 3.0]))
    joblib.dump(model, tmp_path / "model.joblib")

    result = load_predictor("sklearn", tmp_path, None).predict({"input-0": x})
    assert np.array_equal(result["predict"], model.predict(frame))


def test_sklearn_file_must_hold_an_estimator(tmp_path: Path) -> None:
    import joblib

    joblib.dump({"not": "a model"}, tmp_path / "model.joblib")
    with pytest.raises(ValidationError, match=r"model.joblib: holds a dict, which has no predict method"):
        load_predictor("sklearn", tmp_path, None)


# --------------------------------------------------------------------------- xgboost


def test_xgboost_softprob_predicts_what_xgboost_does(tmp_path: Path) -> None:
    import xgboost

    x, y = classification_data()
    x = x.astype(np.float32)
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "seed": 0, "nthread": 1}
    booster = xgboost.train(params, xgboost.DMatrix(x, label=y), num_boost_round=10)
    booster.save_model(str(tmp_path / "model.json"))

    predictor = load_predictor("xgboost", tmp_path, None)
    assert predictor.inputs == [TensorMeta("input-0", "FP32", (-1, 6))]
    assert predictor.outputs == [TensorMeta("predict", "FP32", (-1, 3))]
    result = predictor.predict({"input-0": x[:30]})
    assert np.array_equal(result["predict"], booster.predict(xgboost.DMatrix(x[:30])))
    assert complete_config(None, predictor, name="xgb").max_batch_size == 4


def test_xgboost_binary_model_with_triton_fil_names(tmp_path: Path) -> None:
    import xgboost

    x, y = classification_data(classes=2)
    x = x.astype(np.float32)
    params = {"objective": "binary:logistic", "max_depth": 2, "seed": 0}
    booster = xgboost.train(params, xgboost.DMatrix(x, label=y), num_boost_round=8)
    booster.save_model(str(tmp_path / "fraud.ubj"))
    config = ModelConfig(
        "fraud",
        backend="fil",
        parameters={"model_type": "xgboost_ubj"},
        max_batch_size=32,
        inputs=[TensorConfig("input__0", "FP32", (6,))],
        outputs=[TensorConfig("output__0", "FP32", ())],
        instance_group=[InstanceGroup(threads=1)],
        dynamic_batching=DynamicBatching(),
    )

    predictor = load_predictor(config.flavor or "", tmp_path, config)
    assert predictor.outputs == [TensorMeta("output__0", "FP32", (-1,))]
    result = predictor.predict({"input__0": x[:12]})
    assert np.array_equal(result["output__0"], booster.predict(xgboost.DMatrix(x[:12])))
    assert complete_config(config, predictor).dynamic_batching == DynamicBatching(preferred_batch_size=(32,))


# --------------------------------------------------------------------------- lightgbm


def test_lightgbm_multiclass_predicts_what_lightgbm_does(tmp_path: Path) -> None:
    import lightgbm

    x, y = classification_data()
    params = {"objective": "multiclass", "num_class": 3, "seed": 0, "deterministic": True,
              "num_threads": 1, "verbose": -1}  # fmt: skip
    booster = lightgbm.train(params, lightgbm.Dataset(x, label=y), num_boost_round=10)
    booster.save_model(str(tmp_path / "model.txt"))
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")  # not mistaken for a model file
    config = ModelConfig("lgb", labels="labels.txt", instance_group=[InstanceGroup(threads=2)])

    predictor = load_predictor("lightgbm", tmp_path, config)
    assert predictor.inputs == [TensorMeta("input-0", "FP64", (-1, 6))]
    assert predictor.outputs == [TensorMeta("predict", "FP64", (-1, 3))]
    result = predictor.predict({"input-0": x[:40]})
    assert np.array_equal(result["predict"], booster.predict(x[:40]))


def test_lightgbm_regression_output_is_one_value_per_row(tmp_path: Path) -> None:
    import lightgbm

    x = features(150, 4, np.float64)
    params = {"objective": "regression", "seed": 0, "deterministic": True, "verbose": -1}
    booster = lightgbm.train(params, lightgbm.Dataset(x, label=x.sum(axis=1)), num_boost_round=5)
    booster.save_model(str(tmp_path / "regressor.txt"))

    predictor = load_predictor("lightgbm", tmp_path, None)
    assert predictor.outputs == [TensorMeta("predict", "FP64", (-1,))]
    assert np.array_equal(predictor.predict({"input-0": x[:5]})["predict"], booster.predict(x[:5]))


# --------------------------------------------------------------------------- torch


def test_torchscript_predicts_what_torch_does(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).eval()
    torch.jit.script(module).save(str(tmp_path / "model.pt"))
    config = ModelConfig(
        "net",
        max_batch_size=8,
        inputs=[TensorConfig("INPUT__0", "FP32", (8,))],
        outputs=[TensorConfig("OUTPUT__0", "FP32", (3,))],
    )

    predictor = load_predictor("torch", tmp_path, config)
    assert (predictor.batch_dim, predictor.inputs[0].shape, predictor.outputs[0].shape) == (True, (-1, 8), (-1, 3))
    x = features(5, 8)
    x.flags.writeable = False  # as decoded from a request body
    result = predictor.predict({"INPUT__0": x})
    with torch.inference_mode():
        expected = module(torch.from_numpy(x.copy())).numpy()
    assert np.array_equal(result["OUTPUT__0"], expected)
    assert complete_config(config, predictor) == config

    with pytest.raises(ValidationError, match=r"config: a TorchScript model carries no tensor names"):
        load_predictor("torch", tmp_path, None)


def test_torchscript_tuple_outputs_map_to_configured_outputs(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")

    class TwoHeads(torch.nn.Module):
        def forward(self, x: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x * scale, x.sum(dim=1).to(torch.float64)

    torch.jit.script(TwoHeads()).save(str(tmp_path / "model.pt"))
    config = ModelConfig(
        "heads",
        inputs=[TensorConfig("x", "FP32", (2, 3)), TensorConfig("scale", "FP32", (1,))],
        outputs=[TensorConfig("scaled", "FP32", (2, 3)), TensorConfig("total", "FP64", (2,))],
    )

    predictor = load_predictor("torch", tmp_path, config)
    assert predictor.batch_dim is False
    x = features(2, 3)
    result = predictor.predict({"x": x, "scale": np.array([2.0], dtype=np.float32)})
    assert np.array_equal(result["scaled"], x * np.float32(2.0))
    assert result["total"].dtype == np.float64

    too_many = ModelConfig("heads", inputs=config.inputs, outputs=[*config.outputs, TensorConfig("z", "FP32", (1,))])
    with pytest.raises(ModelportError, match=r"returned 2 tensors, but the config lists 3 outputs"):
        load_predictor("torch", tmp_path, too_many).predict({"x": x, "scale": np.ones(1, np.float32)})


# --------------------------------------------------------------------------- mlflow


def test_mlflow_pyfunc_predicts_what_mlflow_does(tmp_path: Path) -> None:
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    x, y = classification_data()
    model = LogisticRegression(max_iter=500, random_state=0).fit(x, y)
    mlflow_sklearn.save_model(
        model,
        str(tmp_path / "model"),
        signature=infer_signature(x, model.predict(x)),
        serialization_format=mlflow_sklearn.SERIALIZATION_FORMAT_PICKLE,
    )

    predictor = load_predictor("mlflow", tmp_path / "model", None)
    assert predictor.inputs == [TensorMeta("input-0", "FP64", (-1, 6))]
    result = predictor.predict({"input-0": x[:10]})
    assert np.array_equal(result["output-0"], model.predict(x[:10]))


def test_runtime_telemetry_is_off_unless_asked_for() -> None:
    """onnxruntime's telemetry would call a Microsoft host from the server: importing modelport
    turns it off (and MLflow's) for the process and its children, and an explicit setting wins."""
    import subprocess

    code = "import modelport, os; print(os.environ['ORT_DISABLE_TELEMETRY'], os.environ['MLFLOW_DISABLE_TELEMETRY'])"
    env = {key: value for key, value in os.environ.items() if not key.endswith("_DISABLE_TELEMETRY")}
    assert subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split() == ["1", "true"]
    env["ORT_DISABLE_TELEMETRY"] = "0"
    assert subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split() == ["0", "true"]
