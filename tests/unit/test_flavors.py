"""Flavor detection on real (small) models, built here with fixed seeds.

Detection must read models as data only: the hostile-pickle tests check that nothing in a file
is ever executed, and a subprocess test checks that no ML framework gets imported.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import joblib
import numpy as np
import onnx
import pytest
import sklearn
from onnx import TensorProto, helper, numpy_helper
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelport.core.errors import ValidationError
from modelport.registry.flavors import (
    DATATYPES,
    FLAVORS,
    FlavorInfo,
    Signature,
    TensorSpec,
    detect,
)

SEED = 7


# --- model builders ------------------------------------------------------------------------


def _data(rows: int = 60, features: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(rows, features))
    return x, (x[:, 0] + x[:, 1] > 0).astype(int)


def write_mlp_onnx(path: Path) -> Path:
    """A 4-8-3 MLP, batch dimension dynamic; W1 is also listed as a graph input (IR < 4 style)."""
    rng = np.random.default_rng(SEED)
    weights = {
        "W1": rng.normal(size=(4, 8)).astype(np.float32),
        "B1": np.zeros(8, np.float32),
        "W2": rng.normal(size=(8, 3)).astype(np.float32),
        "B2": np.zeros(3, np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["X", "W1"], ["h0"]),
        helper.make_node("Add", ["h0", "B1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "W2"], ["h3"]),
        helper.make_node("Add", ["h3", "B2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        inputs=[
            helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("W1", TensorProto.FLOAT, [4, 8]),
        ],
        outputs=[helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(array, name) for name, array in weights.items()],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="modelport-tests",
        producer_version="0.1.0",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def write_typed_onnx(path: Path) -> Path:
    """INT64, BOOL and STRING inputs, plus a ZipMap output (a sequence of maps, not a tensor)."""
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["ids"], ["ids_out"]),
            helper.make_node("Not", ["mask"], ["mask_out"]),
            helper.make_node("Identity", ["text"], ["text_out"]),
            helper.make_node(
                "ZipMap",
                ["scores"],
                ["probabilities"],
                domain="ai.onnx.ml",
                classlabels_int64s=[0, 1],
            ),
        ],
        "typed",
        inputs=[
            helper.make_tensor_value_info("ids", TensorProto.INT64, [None, 16]),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, ["batch", 16]),
            helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 2]),
        ],
        outputs=[
            helper.make_tensor_value_info("ids_out", TensorProto.INT64, [None, 16]),
            helper.make_tensor_value_info("mask_out", TensorProto.BOOL, ["batch", 16]),
            helper.make_tensor_value_info("text_out", TensorProto.STRING, ["batch"]),
            helper.make_value_info(
                "probabilities",
                helper.make_sequence_type_proto(
                    helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, []))
                ),
            ),
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def fit_logistic() -> LogisticRegression:
    x, y = _data()
    return LogisticRegression(random_state=SEED).fit(x, y)


def fit_pipeline() -> object:
    """String class labels make ``classes_`` an object array: joblib nests a pickle for it."""
    x, y = _data()
    labels = np.array(["no", "yes"], dtype=object)[y]
    return make_pipeline(StandardScaler(), LogisticRegression(random_state=SEED)).fit(x, labels)


def train_xgboost():
    xgb = pytest.importorskip("xgboost")
    x, y = _data()
    params = {"objective": "binary:logistic", "max_depth": 2, "seed": SEED}
    return xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=3)


def write_torch_zip(path: Path, torchscript: bool) -> Path:
    """The archive layout torch.save / torch.jit.save write, without needing torch."""
    prefix = path.stem
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{prefix}/data.pkl", pickle.dumps({"weight": [1.0, 2.0]}, protocol=2))
        archive.writestr(f"{prefix}/byteorder", "little")
        archive.writestr(f"{prefix}/data/0", b"\x00" * 16)
        archive.writestr(f"{prefix}/version", "3\n")
        if torchscript:
            archive.writestr(f"{prefix}/code/__torch__/model.py", "class Model: ...\n")
            archive.writestr(f"{prefix}/constants.pkl", pickle.dumps((), protocol=2))
            archive.writestr(f"{prefix}/.data/version", "6\n")
    return path


MLMODEL = """\
artifact_path: model
flavors:
  python_function:
    env:
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    python_version: 3.11.7
  sklearn:
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.4.2
mlflow_version: 2.12.1
model_uuid: 4d6c3c1e2b7a4f0e9a0b1c2d3e4f5a6b
utc_time_created: 2024-05-01 10:00:00.000000
signature:
  inputs: '{inputs}'
  outputs: '{outputs}'
  params: null
"""


def write_mlflow(folder: Path, inputs: list, outputs: list) -> Path:
    folder.mkdir()
    text = MLMODEL.replace("{inputs}", json.dumps(inputs)).replace("{outputs}", json.dumps(outputs))
    (folder / "MLmodel").write_text(text)
    (folder / "python_env.yaml").write_text("python: 3.11.7\n")
    (folder / "requirements.txt").write_text("scikit-learn==1.4.2\n")
    joblib.dump(fit_logistic(), folder / "model.pkl")
    return folder


class Hostile:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# --- ONNX ----------------------------------------------------------------------------------


def test_onnx_mlp_signature_and_details(tmp_path):
    info = detect(write_mlp_onnx(tmp_path / "mlp.onnx"))

    assert info.flavor == "onnx"
    assert info.framework_version == "0.1.0"  # the producer's version
    assert info.signature == Signature(
        inputs=(TensorSpec("X", "FP32", (-1, 4)),),  # W1 is an initializer, not an input
        outputs=(TensorSpec("probabilities", "FP32", (-1, 3)),),
    )
    assert info.details == {
        "format": "onnx",
        "ir_version": 8,
        "opset": {"ai.onnx": 17},
        "producer_name": "modelport-tests",
        "producer_version": "0.1.0",
        "external_data": False,
    }


def test_onnx_signature_matches_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = write_mlp_onnx(tmp_path / "mlp.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    info = detect(path)

    for spec, arg in zip(info.signature.inputs + info.signature.outputs, session.get_inputs() + session.get_outputs()):
        assert spec.name == arg.name
        assert spec.shape == tuple(d if isinstance(d, int) else -1 for d in arg.shape)


def test_onnx_int64_bool_string_inputs_and_non_tensor_output(tmp_path):
    info = detect(write_typed_onnx(tmp_path / "typed.onnx"))

    assert info.framework_version is None  # no producer recorded
    assert info.signature.inputs == (
        TensorSpec("ids", "INT64", (-1, 16)),
        TensorSpec("mask", "BOOL", (-1, 16)),
        TensorSpec("text", "BYTES", (-1,)),
        TensorSpec("scores", "FP32", (-1, 2)),
    )
    assert [spec.name for spec in info.signature.outputs] == ["ids_out", "mask_out", "text_out"]
    assert info.details["unsupported_io"] == {"probabilities": "sequence"}
    assert info.details["opset"] == {"ai.onnx": 17, "ai.onnx.ml": 3}


def test_onnx_external_weights_are_noted_not_read(tmp_path):
    path = write_mlp_onnx(tmp_path / "mlp.onnx")
    model = onnx.load(path)
    onnx.save(
        model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0
    )
    (tmp_path / "weights.bin").unlink()  # detection must not need it

    assert detect(path).details["external_data"] is True


@pytest.mark.parametrize("damage", ["truncate", "flip", "text"])
def test_corrupt_onnx_is_rejected_naming_the_file(tmp_path, damage):
    path = write_mlp_onnx(tmp_path / "broken.onnx")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        path.write_bytes(bytes(b ^ 0xFF for b in data[:8]) + data[8:])
    else:
        path.write_text("this is not a protobuf")

    with pytest.raises(ValidationError, match="broken.onnx: not a valid ONNX model"):
        detect(path)


# --- pickles and joblib --------------------------------------------------------------------


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)])
@pytest.mark.parametrize(
    ("build", "estimator"),
    [
        (fit_logistic, "sklearn.linear_model._logistic.LogisticRegression"),
        (fit_pipeline, "sklearn.pipeline.Pipeline"),
    ],
)
def test_sklearn_joblib(tmp_path, build, estimator, compress):
    path = tmp_path / "model.joblib"
    joblib.dump(build(), path, compress=compress)

    info = detect(path)

    assert info.flavor == "sklearn"
    assert info.framework_version == sklearn.__version__
    assert info.signature is None
    assert info.details["format"] == "joblib"
    assert info.details["estimator"] == estimator
    method = compress if isinstance(compress, tuple) else ("zlib", compress)
    assert info.details.get("compression") == (method[0] if method[1] else None)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_sklearn_plain_pickle(tmp_path, protocol):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(fit_pipeline(), protocol=protocol))

    info = detect(path)

    assert (info.flavor, info.framework_version) == ("sklearn", sklearn.__version__)
    assert info.details == {"format": "pickle", "estimator": "sklearn.pipeline.Pipeline"}


def test_pickle_is_recognised_by_header_whatever_the_name(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(pickle.dumps(fit_logistic(), protocol=4))

    assert detect(path).flavor == "sklearn"


def test_joblib_arrays_of_every_layout_are_stepped_over(tmp_path):
    """Arrays before the estimator: each raw block must be skipped exactly to reach it."""
    x, y = _data(rows=400, features=300)
    bundle = {
        "ints": np.arange(1000, dtype=np.int32),
        "fortran": np.asfortranarray(np.ones((7, 9))),
        "unicode": np.array(["a", "bbb"]),
        "bytes": np.array([b"x", b"yy"]),
        "objects": np.array([{"a": 1}, None], dtype=object),
        "dates": np.array(["2024-01-01"], dtype="M8[ns]"),
        "records": np.zeros(5, dtype=[("a", "f4"), ("b", "i8")]),
        "empty": np.empty((0, 3)),
        "model": LogisticRegression(max_iter=20).fit(x, y),
    }
    for compress in (0, 3):
        path = tmp_path / f"bundle{compress}.joblib"
        joblib.dump(bundle, path, compress=compress)

        info = detect(path)

        assert info.flavor == "sklearn"
        assert info.framework_version == sklearn.__version__
        assert info.details["estimator"] == "sklearn.linear_model._logistic.LogisticRegression"


def test_truncated_joblib_keeps_what_was_found(tmp_path):
    path = tmp_path / "model.joblib"
    x, y = _data(rows=200, features=500)
    joblib.dump(LogisticRegression(max_iter=20).fit(x, y), path)
    path.write_bytes(path.read_bytes()[:-2000])  # inside coef_, before _sklearn_version

    info = detect(path)

    assert info.flavor == "sklearn"
    assert info.framework_version is None
    assert info.details["estimator"] == "sklearn.linear_model._logistic.LogisticRegression"


def test_lz4_joblib_is_custom_with_a_note(tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(b"\x04\x22\x4d\x18" + bytes(64))

    info = detect(path)

    assert info.flavor == "custom"
    assert info.details["compression"] == "lz4"
    assert "not inspected" in info.details["note"]


def test_pickle_of_plain_data_is_custom(tmp_path):
    path = tmp_path / "labels.pkl"
    path.write_bytes(pickle.dumps({"labels": ["cat", "dog"], "arr": np.arange(3)}))

    assert detect(path) == FlavorInfo("custom", None, None, {"format": "pickle"})


def test_garbage_with_a_pickle_name_is_custom(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x00\x01 definitely not a pickle")

    assert detect(path) == FlavorInfo("custom", None, None, {})


def test_absurd_length_field_ends_the_walk_without_allocating_it(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x04\x8e" + (2**62).to_bytes(8, "little") + b"tiny")  # BINBYTES8

    assert detect(path) == FlavorInfo("custom", None, None, {})


def test_hostile_pickle_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(Hostile(marker)))

    info = detect(path)

    assert info.flavor == "custom"
    assert not marker.exists()


@pytest.mark.parametrize("compress", [0, 3])
def test_hostile_payload_inside_a_sklearn_model_is_never_executed(tmp_path, compress):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.joblib"
    model = fit_logistic()
    model.payload = Hostile(marker)  # unpickling the model would run it
    joblib.dump(model, path, compress=compress)

    info = detect(path)

    assert info.flavor == "sklearn"
    assert not marker.exists()


def test_detection_imports_no_framework(tmp_path):
    """Reading models as data means never importing sklearn, xgboost, lightgbm or torch."""
    joblib.dump(fit_pipeline(), tmp_path / "model.joblib", compress=3)
    write_mlp_onnx(tmp_path / "mlp.onnx")
    write_torch_zip(tmp_path / "net.pt", torchscript=True)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from modelport.registry import flavors\n"
        "def detect(folder, name): flavors.detect(Path(folder) / name)\n"
        f"for name in ('model.joblib', 'mlp.onnx', 'net.pt'): detect({str(tmp_path)!r}, name)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'sklearn', 'xgboost', 'lightgbm', 'torch', 'joblib'}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "[]"


# --- XGBoost, LightGBM, PyTorch ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("model.json", "xgboost-json"),
        ("model.ubj", "xgboost-ubj"),
        ("model.bst", "xgboost-ubj"),
    ],
)
def test_xgboost_native_models(tmp_path, name, fmt):
    booster = train_xgboost()
    path = tmp_path / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # xgboost warns about the .bst extension
        booster.save_model(path)
    booster.save_model(tmp_path / "reference.json")
    saved_with = json.loads((tmp_path / "reference.json").read_text())["version"]

    info = detect(path)

    assert info == FlavorInfo("xgboost", ".".join(map(str, saved_with)), None, {"format": fmt})


def test_json_that_is_not_xgboost_is_custom(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"learning_rate": 0.1, "version": [1, 2, 3]}))

    assert detect(path).flavor == "custom"


def test_xgboost_sklearn_wrapper_pickled(tmp_path):
    xgb = pytest.importorskip("xgboost")
    x, y = _data()
    path = tmp_path / "clf.joblib"
    joblib.dump(xgb.XGBClassifier(n_estimators=3, max_depth=2, random_state=SEED).fit(x, y), path)

    info = detect(path)

    assert info.flavor == "xgboost"
    assert info.framework_version is None
    assert info.details["estimator"] == "xgboost.sklearn.XGBClassifier"


def test_lightgbm_text_model(tmp_path):
    lgb = pytest.importorskip("lightgbm")
    x, y = _data()
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 4, "verbose": -1, "seed": SEED},
        lgb.Dataset(x, label=y),
        num_boost_round=3,
    )
    path = tmp_path / "model.txt"
    booster.save_model(path)

    info = detect(path)

    assert info == FlavorInfo(
        "lightgbm",
        None,
        None,
        {
            "format": "lightgbm-text",
            "format_version": "v4",
            "num_class": 1,
            "num_features": 4,
            "objective": "binary sigmoid:1",
        },
    )


def test_lightgbm_sklearn_wrapper_pickled(tmp_path):
    lgb = pytest.importorskip("lightgbm")
    x, y = _data()
    path = tmp_path / "clf.pkl"
    model = lgb.LGBMClassifier(n_estimators=3, num_leaves=4, verbose=-1, random_state=SEED)
    path.write_bytes(pickle.dumps(model.fit(x, y)))

    info = detect(path)

    assert info.flavor == "lightgbm"
    assert info.details["estimator"] == "lightgbm.sklearn.LGBMClassifier"


@pytest.mark.parametrize("torchscript", [False, True])
def test_torch_archives(tmp_path, torchscript):
    info = detect(write_torch_zip(tmp_path / "net.pt", torchscript))

    assert info.flavor == "torch"
    assert info.framework_version is None
    assert info.details == {
        "format": "torch-zip",
        "torchscript": torchscript,
        "format_version": "6" if torchscript else "3",
    }


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated upstream
def test_torch_files_written_by_torch(tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    torch.save(net.state_dict(), tmp_path / "weights.pth")
    torch.jit.save(torch.jit.script(net), tmp_path / "scripted.pt")

    assert detect(tmp_path / "weights.pth").details["torchscript"] is False
    assert detect(tmp_path / "scripted.pt").details["torchscript"] is True
    assert detect(tmp_path / "scripted.pt").flavor == "torch"


def test_zip_that_is_not_torch_is_custom(tmp_path):
    path = tmp_path / "bundle.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("weights.npy", b"\x00")

    assert detect(path) == FlavorInfo("custom", None, None, {})


def test_unknown_binary_is_custom(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(np.random.default_rng(SEED).bytes(4096))

    assert detect(path) == FlavorInfo("custom", None, None, {})


# --- folders -------------------------------------------------------------------------------


def test_mlflow_column_inputs_tensor_outputs(tmp_path):
    columns = [
        {"name": n, "type": t, "required": True}
        for n, t in [
            ("age", "long"),
            ("score", "double"),
            ("ratio", "float"),
            ("count", "integer"),
            ("member", "boolean"),
            ("city", "string"),
            ("photo", "binary"),
            ("tags", "array"),
        ]
    ]
    outputs = [{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]

    info = detect(write_mlflow(tmp_path / "mlflow-model", columns, outputs))

    assert info.flavor == "mlflow"
    assert info.framework_version == "2.12.1"
    assert info.signature.inputs == (
        TensorSpec("age", "INT64", (-1,)),
        TensorSpec("score", "FP64", (-1,)),
        TensorSpec("ratio", "FP32", (-1,)),
        TensorSpec("count", "INT32", (-1,)),
        TensorSpec("member", "BOOL", (-1,)),
        TensorSpec("city", "BYTES", (-1,)),
        TensorSpec("photo", "BYTES", (-1,)),
    )
    assert info.signature.outputs == (TensorSpec("output-0", "INT64", (-1,)),)
    assert info.details["unsupported_io"] == {"tags": "array"}
    assert info.details["flavors"]["sklearn"]["sklearn_version"] == "1.4.2"
    json.dumps(info.to_dict())  # the unquoted timestamp and version floats stay JSON-safe


def test_mlflow_tensor_inputs(tmp_path):
    inputs = [
        {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 28, 28]}},
        {"name": "ids", "type": "tensor", "tensor-spec": {"dtype": "int32", "shape": [-1, 8]}},
        {"name": "text", "type": "tensor", "tensor-spec": {"dtype": "object", "shape": [-1]}},
        {"name": "flag", "type": "tensor", "tensor-spec": {"dtype": "bool", "shape": [-1]}},
        {"name": "half", "type": "tensor", "tensor-spec": {"dtype": "float16", "shape": [2]}},
    ]
    outputs = [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 10]}}]

    signature = detect(write_mlflow(tmp_path / "m", inputs, outputs)).signature

    assert signature == Signature(
        inputs=(
            TensorSpec("input-0", "FP32", (-1, 28, 28)),
            TensorSpec("ids", "INT32", (-1, 8)),
            TensorSpec("text", "BYTES", (-1,)),
            TensorSpec("flag", "BOOL", (-1,)),
            TensorSpec("half", "FP16", (2,)),
        ),
        outputs=(TensorSpec("output-0", "FP64", (-1, 10)),),
    )


def test_implausible_recorded_version_is_dropped(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "MLmodel").write_text(f"flavors: {{}}\nmlflow_version: '{'9' * 200}'\n")

    assert detect(folder).framework_version is None


def test_mlflow_without_signature(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors:\n  python_function: {}\nmlflow_version: 2.9.2\n")

    info = detect(folder)

    assert (info.flavor, info.framework_version, info.signature) == ("mlflow", "2.9.2", None)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("flavors: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a YAML mapping"),
        ("signature:\n  inputs: '[{oops'\n", "signature.inputs is not valid JSON"),
    ],
)
def test_broken_mlmodel_is_rejected_naming_it(tmp_path, text, problem):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "MLmodel").write_text(text)

    with pytest.raises(ValidationError, match=f"MLmodel: {problem}"):
        detect(folder)


def test_explicit_sklearn_on_an_mlflow_folder_uses_its_pickle(tmp_path):
    folder = write_mlflow(tmp_path / "m", [{"name": "x", "type": "double"}], [])

    info = detect(folder, flavor="sklearn")

    assert (info.flavor, info.framework_version) == ("sklearn", sklearn.__version__)
    assert info.details["model_file"] == "model.pkl"


def _triton_model(folder: Path, versions: tuple[str, ...] = ("1",), config: bool = True) -> None:
    for version in versions:
        (folder / version).mkdir(parents=True)
        (folder / version / "model.onnx").write_bytes(b"")
    if config:
        config = f'name: "{folder.name}"\nplatform: "onnxruntime_onnx"\n'
        (folder / "config.pbtxt").write_text(config)


def test_triton_repository(tmp_path):
    repo = tmp_path / "models"
    _triton_model(repo / "resnet", ("1", "2"))
    _triton_model(repo / "ensemble")
    _triton_model(repo / "bert", config=False)
    (repo / "README.md").write_text("models\n")

    info = detect(repo)

    assert info == FlavorInfo(
        "triton",
        None,
        None,
        {
            "format": "triton",
            "models": ["bert", "ensemble", "resnet"],
        },
    )


def test_single_triton_model_folder(tmp_path):
    _triton_model(tmp_path / "resnet", ("3",))

    assert detect(tmp_path / "resnet").details["models"] == ["resnet"]


def test_folder_with_a_non_model_subfolder_is_not_triton(tmp_path):
    _triton_model(tmp_path / "repo" / "resnet")
    (tmp_path / "repo" / "notebooks").mkdir()

    assert detect(tmp_path / "repo").flavor == "custom"


def test_score_py_folder(tmp_path):
    (tmp_path / "score.py").write_text("import os\n")  # score.py is the entry by name
    joblib.dump(fit_logistic(), tmp_path / "model.joblib")

    info = detect(tmp_path)

    assert info == FlavorInfo("python", None, None, {"format": "python", "entry_script": "score.py"})


def test_entry_script_found_by_its_functions(tmp_path):
    (tmp_path / "helpers.py").write_text("def init():\n    pass\n")
    (tmp_path / "serve.py").write_text(
        "import os\nos.system('false')\n\ndef init():\n    pass\n\nasync def run(data):\n    return data\n"
    )
    (tmp_path / "broken.py").write_text("def init(:\n")

    assert detect(tmp_path).details["entry_script"] == "serve.py"


def test_single_python_file(tmp_path):
    path = tmp_path / "model.py"
    path.write_text("def init():\n    pass\n\ndef run(x):\n    return x\n")

    assert detect(path).flavor == "python"


def test_folder_with_one_model_file_and_side_files(tmp_path):
    write_mlp_onnx(tmp_path / "model.onnx")
    (tmp_path / "config.yaml").write_text("threshold: 0.5\n")
    (tmp_path / "config.pbtxt").write_text('name: "model"\n')
    (tmp_path / "README.md").write_text("An MLP.\n")
    (tmp_path / "labels.json").write_text('["a", "b", "c"]')
    (tmp_path / "labels.pkl").write_bytes(pickle.dumps(["a", "b", "c"]))
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x01")

    info = detect(tmp_path)

    assert info.flavor == "onnx"
    assert info.signature.inputs == (TensorSpec("X", "FP32", (-1, 4)),)
    assert info.details["model_file"] == "model.onnx"


def test_folder_with_a_lightgbm_txt_model(tmp_path):
    lgb = pytest.importorskip("lightgbm")
    x, y = _data()
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(x, label=y), 2)
    booster.save_model(tmp_path / "model.txt")
    (tmp_path / "requirements.txt").write_text("lightgbm\n")

    info = detect(tmp_path)

    assert (info.flavor, info.details["model_file"]) == ("lightgbm", "model.txt")


def test_folder_with_two_models_is_custom(tmp_path):
    write_mlp_onnx(tmp_path / "a.onnx")
    joblib.dump(fit_logistic(), tmp_path / "b.joblib")

    assert detect(tmp_path) == FlavorInfo(
        "custom",
        None,
        None,
        {
            "model_files": ["a.onnx", "b.joblib"],
        },
    )
    # An explicit flavor picks the one model that fits it.
    assert detect(tmp_path, flavor="sklearn").details["model_file"] == "b.joblib"


def test_empty_folder_is_custom(tmp_path):
    assert detect(tmp_path) == FlavorInfo("custom", None, None, {})


# --- explicit flavors ----------------------------------------------------------------------


def test_unknown_flavor_is_rejected():
    with pytest.raises(ValidationError) as excinfo:
        detect(Path("anything"), flavor="keras")

    assert str(excinfo.value) == (
        "flavor: 'keras' is not one of onnx, sklearn, torch, xgboost, lightgbm, mlflow, python, triton, pipeline, custom"
    )


def test_missing_path_is_rejected(tmp_path):
    with pytest.raises(ValidationError, match="nowhere.onnx: no such file or folder"):
        detect(tmp_path / "nowhere.onnx")


def test_explicit_onnx_on_a_pickle_names_the_file(tmp_path):
    path = tmp_path / "model.pkl"
    joblib.dump(fit_logistic(), path)

    with pytest.raises(ValidationError, match="model.pkl: not a valid ONNX model"):
        detect(path, flavor="onnx")


def test_explicit_onnx_reads_a_graph_whatever_its_name(tmp_path):
    path = write_mlp_onnx(tmp_path / "model.bin")

    info = detect(path, flavor="onnx")

    assert info.signature.outputs == (TensorSpec("probabilities", "FP32", (-1, 3)),)


@pytest.mark.parametrize("flavor", ["sklearn", "xgboost", "torch", "mlflow", "python"])
def test_explicit_flavor_that_cannot_load_an_onnx_graph(tmp_path, flavor):
    path = write_mlp_onnx(tmp_path / "mlp.onnx")

    with pytest.raises(ValidationError, match=r"mlp.onnx: detected as onnx \(onnx\)"):
        detect(path, flavor=flavor)


@pytest.mark.parametrize(
    ("flavor", "needs"),
    [
        ("triton", "not a Triton model repository"),
        ("mlflow", "no MLmodel file"),
        ("python", "no entry script"),
    ],
)
def test_self_describing_flavors_are_verified(tmp_path, flavor, needs):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x01\x02\x03")

    with pytest.raises(ValidationError, match=f"weights.bin: .*{needs}"):
        detect(path, flavor=flavor)
    with pytest.raises(ValidationError, match=needs):
        detect(tmp_path, flavor=flavor)


def test_explicit_flavor_that_also_loads_pickles_keeps_the_details(tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(fit_logistic(), path)

    info = detect(path, flavor="xgboost")

    assert info.flavor == "xgboost"
    assert info.framework_version is None  # the sklearn version says nothing about xgboost
    assert info.details["detected_flavor"] == "sklearn"
    assert info.details["estimator"] == "sklearn.linear_model._logistic.LogisticRegression"


def test_explicit_matching_flavor_keeps_everything(tmp_path):
    path = write_mlp_onnx(tmp_path / "mlp.onnx")

    assert detect(path, flavor="onnx") == detect(path)


def test_explicit_custom_fits_anything(tmp_path):
    info = detect(write_mlp_onnx(tmp_path / "mlp.onnx"), flavor="custom")

    assert info.flavor == "custom"
    assert info.signature.inputs == (TensorSpec("X", "FP32", (-1, 4)),)
    assert info.details["detected_flavor"] == "onnx"


def test_explicit_framework_flavor_on_unrecognised_bytes_is_honoured(tmp_path):
    path = tmp_path / "model.bst"
    path.write_bytes(b"binf" + bytes(60))  # e.g. XGBoost's retired binary format

    assert detect(path, flavor="xgboost") == FlavorInfo(
        "xgboost",
        None,
        None,
        {
            "detected_flavor": "custom",
        },
    )


@pytest.mark.parametrize("flavor", ["custom", "sklearn"])
def test_explicit_flavor_takes_an_unparseable_onnx_file_as_plain_bytes(tmp_path, flavor):
    path = tmp_path / "weights.onnx"
    path.write_bytes(b"not a protobuf at all \xff\x00")

    assert detect(path, flavor=flavor).flavor == flavor
    assert detect(tmp_path, flavor=flavor).flavor == flavor
    with pytest.raises(ValidationError, match="weights.onnx: not a valid ONNX model"):
        detect(tmp_path)  # without a flavor, the name is what detection goes by


def test_explicit_flavor_on_a_folder_of_other_models_is_rejected(tmp_path):
    write_mlp_onnx(tmp_path / "mlp.onnx")

    with pytest.raises(ValidationError, match="detected as onnx"):
        detect(tmp_path, flavor="lightgbm")


# --- data classes --------------------------------------------------------------------------


def test_signature_round_trips_through_json():
    signature = Signature(
        inputs=(TensorSpec("x", "FP32", (-1, 4)), TensorSpec("s", "BYTES", (-1,))),
        outputs=(TensorSpec("y", "INT64", ()),),
    )

    data = json.loads(json.dumps(signature.to_dict()))

    assert data["inputs"][0] == {"name": "x", "datatype": "FP32", "shape": [-1, 4]}
    assert Signature.from_dict(data) == signature
    assert Signature.from_dict({"inputs": []}) == Signature((), ())


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"inputs": [{"name": "x", "datatype": "FLOAT", "shape": [1]}]}, "inputs[0].datatype"),
        ({"inputs": [{"name": "", "datatype": "FP32", "shape": [1]}]}, "inputs[0].name"),
        ({"outputs": [{"name": "y", "datatype": "FP32", "shape": [-2]}]}, "outputs[0].shape"),
        ({"outputs": [{"name": "y", "datatype": "FP32", "shape": "1"}]}, "outputs[0].shape"),
        ({"inputs": "x"}, "inputs"),
        ([], ""),
    ],
)
def test_signature_from_dict_names_the_bad_field(data, field):
    with pytest.raises(ValidationError) as excinfo:
        Signature.from_dict(data)

    assert str(excinfo.value).startswith(f"signature{'.' if field else ''}{field}: ")


def test_constants():
    assert FLAVORS == (
        "onnx",
        "sklearn",
        "torch",
        "xgboost",
        "lightgbm",
        "mlflow",
        "python",
        "triton",
        "pipeline",
        "custom",
    )
    assert len(DATATYPES) == 14


def test_every_result_is_json_safe(tmp_path):
    write_typed_onnx(tmp_path / "typed.onnx")
    joblib.dump(fit_pipeline(), tmp_path / "p.joblib")
    write_torch_zip(tmp_path / "t.pt", torchscript=True)
    for path in (tmp_path / "typed.onnx", tmp_path / "p.joblib", tmp_path / "t.pt"):
        info = detect(path)
        assert json.loads(json.dumps(info.to_dict()))["flavor"] == info.flavor


# --- what pickles import ------------------------------------------------------------------------------


class _Reduces:
    """Pickles as ``func(*args)``; never loaded by these tests."""

    def __init__(self, func, *args) -> None:  # noqa: ANN001, ANN002
        self.func, self.args = func, args

    def __reduce__(self):  # noqa: ANN204
        return self.func, self.args


@pytest.mark.parametrize(
    "name, safe",
    [
        ("numpy._core.multiarray._reconstruct", True),
        ("sklearn.tree._tree.Tree", True),
        ("builtins.bytearray", True),
        ("__builtin__.set", True),
        ("collections.OrderedDict", True),
        ("builtins.eval", False),
        ("builtins.getattr", False),
        ("__builtin__.__import__", False),
        ("os.system", False),
        ("posix.system", False),
        ("subprocess.Popen", False),
        ("importlib.import_module", False),
        ("numpy.testing._private.utils.runstring", False),
        ("pandas.read_pickle", False),
        ("joblib.load", False),
        ("__main__.MyModel", False),
        ("numpyx.evil", False),
    ],
)
def test_safe_imports_are_the_ml_stack_and_plain_constructors(name: str, safe: bool) -> None:
    from modelport.registry.flavors.pickle_imports import is_safe_import

    assert is_safe_import(name) is safe


def test_every_pickle_is_walked_to_its_end(tmp_path: Path) -> None:
    from modelport.registry.flavors.pickle_imports import inspect_pickles

    x, y = np.random.default_rng(0).standard_normal((20, 2)), np.array([0, 1] * 10)
    model = LogisticRegression().fit(x, y)
    joblib.dump(model, tmp_path / "clean.joblib", compress=("gzip", 3))
    joblib.dump([model, _Reduces(eval, "1")], tmp_path / "late.joblib", compress=("xz", 3))
    (tmp_path / "late.pkl").write_bytes(pickle.dumps({"m": model, "x": _Reduces(os.system, "true")}, protocol=2))
    (tmp_path / "cut.pkl").write_bytes(pickle.dumps(model)[:-20])
    (tmp_path / "notes.txt").write_text("not a pickle")
    findings = inspect_pickles((p.name, p) for p in sorted(tmp_path.iterdir()))
    assert findings.unsafe_imports == {"late.joblib": ["builtins.eval"], "late.pkl": [f"{os.system.__module__}.system"]}
    assert findings.uninspected == ["cut.pkl"]
    assert findings.to_details() == {"unsafe_imports": findings.unsafe_imports, "uninspected_pickles": ["cut.pkl"]}
