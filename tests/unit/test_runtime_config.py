"""Model config: YAML and Triton protobuf-text loading, validation messages, Triton JSON, completion."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modelport.core.errors import ValidationError
from modelport.runtime import (
    DynamicBatching,
    InstanceGroup,
    ModelConfig,
    TensorConfig,
    TensorMeta,
    VersionPolicy,
    complete_config,
    config_from_dict,
    load_config,
    load_config_pbtxt,
    load_config_yaml,
    override_config,
)

TRITON_PBTXT = """\
# Fraud scorer, exported from the training pipeline.
name: "fraud"
platform: "onnxruntime_onnx"
max_batch_size: 32   # requests are concatenated up to this
input [
  {
    name: "features"
    data_type: TYPE_FP32
    dims: [ 16 ]
  },
  {
    name: "mask"
    data_type: TYPE_BOOL
    dims: [ -1, 4 ]
    optional: true
  }
]
output {
  name: "probabilities"
  data_type: TYPE_FP32
  dims: [ 2 ]
  label_filename: "labels.txt"
}
output {
  name: "embedding"
  data_type: TYPE_FP16
  dims: 8
  reshape: { shape: [ 2, 4 ] }
}
instance_group [
  { count: 2, kind: KIND_CPU },
  { count: 1 kind: KIND_GPU gpus: [ 0, 1 ] }
]
dynamic_batching {
  preferred_batch_size: [ 8, 16 ]
  max_queue_delay_microseconds: 500
  preserve_ordering: true
  default_queue_policy {
    max_queue_size: 64
    default_timeout_microseconds: 100000
    timeout_action: REJECT
  }
}
version_policy: { specific: { versions: [ 1, 3 ] } }
parameters { key: "intra_op_thread_count" value: { string_value: "4" } }
parameters [ { key: "cudnn_conv_algo_search" value { string_value: "HEURISTIC" } } ]
model_warmup [
  {
    name: "zeros"
    batch_size: 1
    inputs { key: "features" value: { data_type: TYPE_FP32 dims: [ 16 ] zero_data: true } }
  }
]
optimization { execution_accelerators { cpu_execution_accelerator: [ { name: "openvino" } ] } }
"""

CONFIG_YAML = """\
name: churn
flavor: sklearn
max_batch_size: 64
inputs:
  - name: features
    datatype: FP64
    dims: [12]
outputs:
  - name: predict
    data_type: TYPE_INT64
    dims: []
  - {name: predict_proba, datatype: FP64, dims: [2]}
labels: classes.txt
dynamic_batching:
  max_queue_delay_microseconds: 2000
  max_queue_size: 128
  latency_budget_ms: 50
instance_group:
  - {count: 3, kind: cpu, threads: 2}
version_policy: {latest: {num_versions: 2}}
parameters: {intra_op_thread_count: 2, verbose: true}
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_pbtxt_parses_a_realistic_triton_config(tmp_path: Path) -> None:
    config = load_config_pbtxt(write(tmp_path / "fraud", "config.pbtxt", TRITON_PBTXT))

    assert config.name == "fraud"
    assert (config.flavor, config.platform, config.backend) == ("onnx", "onnxruntime_onnx", None)
    assert config.max_batch_size == 32
    assert config.inputs == [
        TensorConfig("features", "FP32", (16,)),
        TensorConfig("mask", "BOOL", (-1, 4), optional=True),
    ]
    probabilities, embedding = config.outputs
    assert probabilities == TensorConfig("probabilities", "FP32", (2,), label_filename="labels.txt")
    assert (embedding.datatype, embedding.dims, embedding.extra) == ("FP16", (8,), {"reshape": {"shape": [2, 4]}})
    assert config.instance_group == [
        InstanceGroup(count=2, kind="cpu"),
        InstanceGroup(count=1, kind="gpu", extra={"gpus": [0, 1]}),
    ]
    assert config.dynamic_batching == DynamicBatching(
        preferred_batch_size=(8, 16),
        max_queue_delay_microseconds=500,
        preserve_ordering=True,
        max_queue_size=64,
        default_timeout_microseconds=100000,
        extra={"default_queue_policy": {"timeout_action": "REJECT"}},
    )
    assert config.version_policy == VersionPolicy("specific", versions=(1, 3))
    assert config.parameters == {"intra_op_thread_count": "4", "cudnn_conv_algo_search": "HEURISTIC"}
    assert set(config.extra) == {"model_warmup", "optimization"}
    warmup = config.extra["model_warmup"][0]  # a protobuf map reads as a mapping, as in Triton's JSON
    assert warmup["inputs"]["features"] == {"data_type": "TYPE_FP32", "dims": [16], "zero_data": True}


def test_yaml_parses_the_same_fields_with_plural_spellings(tmp_path: Path) -> None:
    config = load_config_yaml(write(tmp_path, "config.yaml", CONFIG_YAML))

    assert (config.name, config.flavor, config.backend, config.platform) == ("churn", "sklearn", "sklearn", None)
    assert config.inputs == [TensorConfig("features", "FP64", (12,))]
    assert [(t.name, t.datatype, t.dims) for t in config.outputs] == [
        ("predict", "INT64", ()),
        ("predict_proba", "FP64", (2,)),
    ]
    assert config.dynamic_batching == DynamicBatching(
        max_queue_delay_microseconds=2000, max_queue_size=128, latency_budget_ms=50.0
    )
    assert config.instance_group == [InstanceGroup(count=3, kind="cpu", threads=2)]
    assert config.version_policy.select([1, 2, 3, 7]) == [3, 7]
    assert config.parameters == {"intra_op_thread_count": "2", "verbose": "true"}
    assert config.labels == "classes.txt"


def test_load_config_picks_the_parser_by_suffix_and_names_the_model_after_its_folder(tmp_path: Path) -> None:
    pbtxt = write(tmp_path / "iris", "config.pbtxt", 'backend: "onnxruntime"\nmax_batch_size: 0\n')
    yml = write(tmp_path / "iris2", "config.yaml", "flavor: xgboost\n")

    assert (load_config(pbtxt).name, load_config(pbtxt).flavor) == ("iris", "onnx")
    assert (load_config(yml).name, load_config(yml).flavor) == ("iris2", "xgboost")


def test_defaults_follow_triton(tmp_path: Path) -> None:
    config = load_config_pbtxt(write(tmp_path / "m", "config.pbtxt", ""))

    assert config.max_batch_size == 0
    assert config.dynamic_batching is None
    assert config.instance_group == [InstanceGroup(count=1, kind="cpu")]
    assert config.version_policy == VersionPolicy("latest", num_versions=1)
    assert config.flavor is None


@pytest.mark.parametrize(
    ("platform", "backend", "parameters", "flavor"),
    [
        ("pytorch_libtorch", None, {}, "torch"),
        (None, "pytorch", {}, "torch"),
        (None, "fil", {"model_type": "xgboost_json"}, "xgboost"),
        (None, "fil", {"model_type": "lightgbm"}, "lightgbm"),
        (None, "python", {}, "python"),
        ("tensorrt_plan", None, {}, None),
    ],
)
def test_flavor_is_derived_from_triton_platform_and_backend(
    platform: str | None, backend: str | None, parameters: dict[str, str], flavor: str | None
) -> None:
    assert ModelConfig("m", platform=platform, backend=backend, parameters=parameters).flavor == flavor


def test_version_policies_select_versions() -> None:
    available = [3, 1, 2, 10]
    assert VersionPolicy().select(available) == [10]
    assert VersionPolicy("latest", num_versions=2).select(available) == [3, 10]
    assert VersionPolicy("all").select(available) == [1, 2, 3, 10]
    assert VersionPolicy("specific", versions=(2, 5)).select(available) == [2]


def test_to_dict_renders_tritons_json_model_config(tmp_path: Path) -> None:
    config = load_config_pbtxt(write(tmp_path / "fraud", "config.pbtxt", TRITON_PBTXT))
    rendered = config.to_dict()

    assert rendered["name"] == "fraud"
    assert rendered["platform"] == "onnxruntime_onnx"
    assert rendered["max_batch_size"] == 32
    assert rendered["input"][0] == {"name": "features", "data_type": "TYPE_FP32", "dims": [16]}
    assert rendered["input"][1]["optional"] is True
    assert rendered["output"][0]["label_filename"] == "labels.txt"
    assert rendered["output"][1]["reshape"] == {"shape": [2, 4]}
    assert rendered["instance_group"] == [
        {"count": 2, "kind": "KIND_CPU"},
        {"count": 1, "kind": "KIND_GPU", "gpus": [0, 1]},
    ]
    assert rendered["dynamic_batching"] == {
        "preferred_batch_size": [8, 16],
        "max_queue_delay_microseconds": 500,
        "preserve_ordering": True,
        "default_queue_policy": {
            "default_timeout_microseconds": 100000,
            "max_queue_size": 64,
            "timeout_action": "REJECT",
        },
    }
    assert rendered["version_policy"] == {"specific": {"versions": [1, 3]}}
    assert rendered["parameters"]["intra_op_thread_count"] == {"string_value": "4"}
    assert "model_warmup" in rendered and "optimization" in rendered
    # Triton's JSON config reads back into the same config (what the load API's "config" carries).
    assert config_from_dict(rendered) == config


def test_yaml_config_round_trips_through_triton_json(tmp_path: Path) -> None:
    config = load_config_yaml(write(tmp_path, "config.yaml", CONFIG_YAML))
    rendered = config.to_dict()

    assert rendered["backend"] == "sklearn"
    assert rendered["output"][0] == {"name": "predict", "data_type": "TYPE_INT64", "dims": []}
    assert rendered["instance_group"] == [{"count": 3, "kind": "KIND_CPU", "threads": 2}]
    assert rendered["version_policy"] == {"latest": {"num_versions": 2}}
    assert config_from_dict(rendered) == config


def test_triton_json_config_is_read_with_its_printed_defaults() -> None:
    """Triton prints every primitive field (unset strings as "") and int64 fields as strings."""
    config = config_from_dict(
        {
            "name": "m", "platform": "", "backend": "onnxruntime", "default_model_filename": "",
            "max_batch_size": "8",
            "input": [{"name": "x", "data_type": "TYPE_INT64", "format": "FORMAT_NONE", "dims": ["-1", "3"],
                       "is_shape_tensor": False, "optional": False}],
            "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": ["2"], "label_filename": ""}],
        }
    )  # fmt: skip
    assert (config.flavor, config.platform, config.default_model_filename) == ("onnx", None, None)
    assert (config.max_batch_size, config.inputs[0].dims) == (8, (-1, 3))
    assert config.inputs[0].extra == {"format": "FORMAT_NONE", "is_shape_tensor": False}
    assert config.outputs[0].label_filename is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('input { name: "x" data_type: TYPE_FP32 dims: [ -2 ] }', "config.pbtxt: input[0].dims[0]: -2 is not -1"),
        ('input { name: "x" data_type: TYPE_FP32 dims: [ 0 ] }', "input[0].dims[0]: 0 is not -1"),
        (
            'output [ { name: "a" data_type: TYPE_FP32 dims: 1 }, { name: "b" data_type: TYPE_COMPLEX dims: 1 } ]',
            'line 1 column 77: data_type: enum type "inference.DataType" has no value named TYPE_COMPLEX',
        ),
        ('input { name: "x" dims: [ 1 ] }', "input[0].data_type: required"),
        ("input { data_type: TYPE_FP32 dims: [ 1 ] }", "input[0].name: required"),
        (
            'input { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } input { name: "x" data_type: TYPE_FP32 dims: [ 1 ] }',
            "input[1].name: 'x' appears twice",
        ),
        ("max_batch_size: -1", "max_batch_size: input should be greater than or equal to 0"),
        ('max_batch_size: "eight"', 'line 1 column 17: max_batch_size: couldn\'t parse integer: "eight"'),
        ("max_batch_size: 1 max_batch_size: 2", "max_batch_size: given more than once"),
        (
            "max_batch_size: 8 dynamic_batching { preferred_batch_size: [ 4, 16 ] }",
            "dynamic_batching.preferred_batch_size: 16 exceeds max_batch_size 8",
        ),
        (
            "dynamic_batching { preferred_batch_size: [ 0 ] }",
            "dynamic_batching.preferred_batch_size[0]: input should be greater than or equal to 1",
        ),
        ("dynamic_batching { preserve_ordering: maybe }", 'preserve_ordering: expected "true" or "false"'),
        (
            "instance_group [ { count: 0 kind: KIND_CPU } ]",
            "instance_group[0].count: input should be greater than or equal",
        ),
        ("instance_group [ { count: 1 kind: KIND_MODEL } ]", "instance_group[0].kind: 'KIND_MODEL' is not a kind"),
        ("instance_group [ { count: 2 process: 2 } ]", 'process: expected "true" or "false"'),
        (
            "version_policy: { latest: { num_versions: 0 } }",
            "version_policy.num_versions: input should be greater than",
        ),
        ("version_policy: { newest: { } }", "line 1: newest: unknown field (allowed: all, latest, specific)"),
        ("version_policy: { specific: { } }", "version_policy.versions: must list at least one version"),
        ('name: "bad name"', "name: 'bad name' is not valid"),
        ("input: 3", 'line 1 column 8: expected "{"'),
        (
            'parameters { key: "threads" value { int_value: 3 } }',
            "int_value: unknown field; did you mean 'string_value'?",
        ),
        ("optimisation { }", "line 1: optimisation: unknown field; did you mean 'optimization'?"),
    ],
)
def test_validation_errors_name_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "model", "config.pbtxt", text)
    with pytest.raises(ValidationError) as caught:
        load_config_pbtxt(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message.removeprefix("config.pbtxt: ") in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name: "m"\ninput {\n  name: "x"\n', 'line 3 column 9: expected "}"'),
        ('name "m"', 'line 1 column 6: expected ":"'),
        ("input { dims: [ 1 2 ] }", 'line 1 column 19: expected ","'),
        ("name: @", "line 1 column 7: name: expected string but found: '@'"),
        ("}", "line 1 column 1: expected identifier or number, got }"),
    ],
)
def test_pbtxt_syntax_errors_give_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "m", "config.pbtxt", text)
    with pytest.raises(ValidationError, match=f"^{path}: ") as caught:
        load_config_pbtxt(path)
    assert message in str(caught.value)


def test_pbtxt_scalars(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        max_batch_size: 0x1F platform: 'it\\'s' backend: "multi" "part"
        instance_group { process: False } instance_group < process: t passive: True >
        sequence_batching { direct { minimum_slot_utilization: 0.1 } }
        optimization { priority: PRIORITY_MAX }
        """
    )
    config = load_config_pbtxt(write(tmp_path / "m", "config.pbtxt", text))
    assert (config.max_batch_size, config.platform, config.backend) == (31, "it's", "multipart")
    assert [group.process for group in config.instance_group] == [False, True]
    assert config.instance_group[1].extra == {"passive": True}
    assert config_from_dict(config.to_dict()).extra == {
        "sequence_batching": {"direct": {"minimum_slot_utilization": 0.1}},  # a 32-bit float as written
        "optimization": {"priority": "PRIORITY_MAX"},
    }


def test_yaml_errors_name_the_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"config.yaml: not valid YAML at line 2"):
        load_config_yaml(write(tmp_path, "config.yaml", "name: m\nkey: a: b\n"))
    with pytest.raises(ValidationError, match=r"config.yaml: expected a mapping, got a list"):
        load_config_yaml(write(tmp_path, "config.yaml", "- a\n"))
    with pytest.raises(ValidationError, match=r"config.yaml: inputs: give either input or inputs, not both"):
        load_config_yaml(write(tmp_path, "config.yaml", "input: []\ninputs: []\n"))
    with pytest.raises(ValidationError, match=r"config.yaml: input\[0\].dims\[0\]: input should be a valid integer"):
        load_config_yaml(write(tmp_path, "config.yaml", "input: [{name: a, datatype: FP32, dims: [x]}]\n"))
    with pytest.raises(
        ValidationError, match=r"config.yaml: dynamic_batching.latency_budget_ms: input should be greater"
    ):
        load_config_yaml(write(tmp_path, "config.yaml", "dynamic_batching: {latency_budget_ms: 0}\n"))
    with pytest.raises(ValidationError, match=r"nope.yaml: does not exist"):
        load_config_yaml(tmp_path / "nope.yaml")


def test_dataclasses_validate_when_built_directly() -> None:
    with pytest.raises(ValidationError, match=r"^dims: -3 is not -1 or a positive integer$"):
        TensorConfig("x", "FP32", (-3,))
    assert TensorConfig("x", "TYPE_STRING", (1,)).datatype == "BYTES"
    with pytest.raises(ValidationError, match=r"^count: input should be greater than or equal to 1$"):
        InstanceGroup(count=0)
    assert InstanceGroup(kind="KIND_AUTO").kind == "cpu"


# --------------------------------------------------------------------------- completion


@dataclass
class StubPredictor:
    """Just the metadata half of the Predictor contract, which is all completion reads."""

    inputs: list[TensorMeta]
    outputs: list[TensorMeta] = field(default_factory=list)
    batch_dim: bool = True


BATCHABLE = StubPredictor([TensorMeta("x", "FP32", (-1, 3))], [TensorMeta("y", "INT64", (-1,))])
FIXED = StubPredictor([TensorMeta("x", "FP32", (1, 3))], [TensorMeta("y", "INT64", (1,))], batch_dim=False)


def test_config_less_batchable_model_gets_tritons_default_batching() -> None:
    config = complete_config(None, BATCHABLE, name="m", flavor="onnx")

    assert (config.name, config.flavor, config.platform) == ("m", "onnx", "onnxruntime_onnx")
    assert config.max_batch_size == 4
    assert config.dynamic_batching == DynamicBatching(preferred_batch_size=(4,))
    assert config.inputs == [TensorConfig("x", "FP32", (3,))]
    assert config.outputs == [TensorConfig("y", "INT64", ())]


def test_fixed_shape_model_is_not_batched() -> None:
    config = complete_config(None, FIXED, name="m")
    assert (config.max_batch_size, config.dynamic_batching) == (0, None)
    assert config.inputs == [TensorConfig("x", "FP32", (1, 3))]
    with pytest.raises(ValidationError, match=r"max_batch_size: 8, but model 'm' has no variable batch dim"):
        complete_config(ModelConfig("m", max_batch_size=8), FIXED)


def test_configured_batch_size_is_kept_and_missing_tensors_filled() -> None:
    config = ModelConfig("m", max_batch_size=16, dynamic_batching=DynamicBatching(max_queue_delay_microseconds=100))
    completed = complete_config(config, BATCHABLE)

    assert completed.max_batch_size == 16
    assert completed.dynamic_batching == DynamicBatching(preferred_batch_size=(16,), max_queue_delay_microseconds=100)
    assert completed.inputs == [TensorConfig("x", "FP32", (3,))]


def test_full_rank_dims_in_config_mean_no_batching() -> None:
    config = ModelConfig("m", inputs=[TensorConfig("x", "FP32", (-1, 3))])
    completed = complete_config(config, BATCHABLE)

    assert (completed.max_batch_size, completed.dynamic_batching) == (0, None)
    assert completed.outputs == [TensorConfig("y", "INT64", (-1,))]


def test_configured_tensors_must_match_the_model() -> None:
    def complete(*inputs: TensorConfig) -> ModelConfig:
        return complete_config(ModelConfig("m", max_batch_size=4, inputs=list(inputs)), BATCHABLE)

    with pytest.raises(ValidationError, match=r"input\[0\].name: the model has no input 'z' \(it has x\)"):
        complete(TensorConfig("z", "FP32", (3,)))
    with pytest.raises(ValidationError, match=r"input\[0\].data_type: FP64, but the model's input 'x' is FP32"):
        complete(TensorConfig("x", "FP64", (3,)))
    with pytest.raises(ValidationError, match=r"input\[0\].dims: \[4\] does not fit .* dims \[3\] \(after the batch"):
        complete(TensorConfig("x", "FP32", (4,)))
    assert complete(TensorConfig("x", "FP32", (3,))).inputs[0].dims == (3,)


def test_dynamic_batching_needs_a_batch_dim() -> None:
    config = ModelConfig("m", dynamic_batching=DynamicBatching())
    with pytest.raises(ValidationError, match="dynamic_batching: needs max_batch_size > 0"):
        complete_config(config, FIXED)


def test_importing_the_runtime_imports_no_framework() -> None:
    code = (
        "import sys, modelport.runtime, modelport.runtime.flavors;"
        "print(sorted(m for m in ('onnxruntime','sklearn','xgboost','lightgbm','torch','mlflow','pandas')"
        " if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_overrides_merge_mappings_and_replace_the_rest() -> None:
    own = config_from_dict(
        {
            "name": "m",
            "max_batch_size": 8,
            "dynamic_batching": {"max_queue_delay_microseconds": 100, "preserve_ordering": True, "max_queue_size": 3},
        }
    )
    tuned = override_config(
        own,
        "m",
        {
            "max_batch_size": 32,
            "instance_group": [{"count": 2}],
            "dynamic_batching": {"max_queue_delay_microseconds": 900, "default_timeout_microseconds": 50},
        },
    )
    assert tuned.max_batch_size == 32
    assert tuned.instance_group == [InstanceGroup(count=2)]
    assert tuned.dynamic_batching == DynamicBatching(
        max_queue_delay_microseconds=900, preserve_ordering=True, max_queue_size=3, default_timeout_microseconds=50
    )
    assert override_config(None, "m", {"max_batch_size": 4}).name == "m"
    with pytest.raises(
        ValidationError, match=r"^cfg: instance_group\[0\].count: input should be greater than or equal to 1$"
    ):
        override_config(own, "m", {"instance_group": [{"count": 0}]}, "cfg")


def test_published_schema_describes_the_document_as_written() -> None:
    schema = ModelConfig.model_json_schema()
    defs = schema["$defs"]
    assert schema["additionalProperties"] is False
    assert {"input", "output", "optimization", "model_warmup"} <= set(schema["properties"])  # Triton's names
    assert {"KIND_CPU", "cpu"} <= set(defs["InstanceGroup"]["properties"]["kind"]["enum"])
    assert {"TYPE_FP32", "FP32"} <= set(defs["TensorConfig"]["properties"]["data_type"]["enum"])
    assert [set(choice["properties"]) for choice in defs["VersionPolicy"]["oneOf"]] == [
        {"latest"},
        {"all"},
        {"specific"},
    ]
    assert "extra" not in defs["TensorConfig"]["properties"]
