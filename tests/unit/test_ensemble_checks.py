"""An ensemble's steps checked against its composing models' configs, without a server: every
refusal is one line naming the ensemble, the step (index and model) and the tensor."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelport.core.errors import ValidationError
from modelport.runtime.config import config_from_dict, load_config
from modelport.runtime.ensemble import plan_ensemble


def _model(
    name: str, inputs: list[tuple[str, str, list[int]]], outputs: list[tuple[str, str, list[int]]], mbs: int = 8
):
    return config_from_dict(
        {
            "name": name,
            "max_batch_size": mbs,
            "input": [{"name": n, "data_type": t, "dims": d} for n, t, d in inputs],
            "output": [{"name": n, "data_type": t, "dims": d} for n, t, d in outputs],
        }
    )


COMPOSING = {
    "scaler": {"1": _model("scaler", [("raw", "FP32", [4])], [("scaled", "FP32", [4])])},
    "classifier": {"1": _model("classifier", [("features", "FP32", [4])], [("logits", "FP32", [3])], mbs=16)},
    "post": {"1": _model("post", [("logits", "FP32", [3])], [("probabilities", "FP32", [3]), ("label", "INT64", [1])])},
}


def _step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> dict[str, Any]:
    return {"model_name": model, "model_version": -1, "input_map": inputs, "output_map": outputs}


ENSEMBLE: dict[str, Any] = {
    "name": "pipeline",
    "platform": "ensemble",
    "max_batch_size": 8,
    "input": [{"name": "RAW", "data_type": "TYPE_FP32", "dims": [4]}],
    "output": [
        {"name": "PROBABILITIES", "data_type": "TYPE_FP32", "dims": [3]},
        {"name": "LABEL", "data_type": "TYPE_INT64", "dims": [1]},
    ],
    "ensemble_scheduling": {
        "step": [
            _step("scaler", {"raw": "RAW"}, {"scaled": "scaled"}),
            _step("classifier", {"features": "scaled"}, {"logits": "logits"}),
            _step("post", {"logits": "logits"}, {"probabilities": "PROBABILITIES", "label": "LABEL"}),
        ]
    },
}


def _refusal(change: Any, composing: Any = COMPOSING) -> str:
    document = copy.deepcopy(ENSEMBLE)
    change(document)
    with pytest.raises(ValidationError) as caught:
        plan_ensemble(config_from_dict(document), composing)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("ensemble 'pipeline'")
    return message


def _steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    return document["ensemble_scheduling"]["step"]


def test_a_valid_ensemble_plans_its_steps_in_order() -> None:
    plan = plan_ensemble(config_from_dict(ENSEMBLE), COMPOSING)
    assert [step.model_name for step in plan.steps] == ["scaler", "classifier", "post"]
    assert plan.steps[1].inputs == {"features": "scaled"} and plan.steps[1].needs == {"scaled"}
    assert plan.inputs == ("RAW",) and plan.outputs == ("PROBABILITIES", "LABEL")
    assert plan.composing == (("scaler", None), ("classifier", None), ("post", None))


def test_pbtxt_ensemble_reads_as_triton_writes_it(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "pipeline").mkdir()
    path = tmp_path / "pipeline" / "config.pbtxt"
    path.write_text(
        'name: "pipeline"\nplatform: "ensemble"\nmax_batch_size: 8\n'
        'input [ { name: "RAW" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
        'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
        'ensemble_scheduling { step [ { model_name: "scaler" model_version: -1\n'
        '  input_map { key: "raw" value: "RAW" } output_map { key: "scaled" value: "OUT" } } ] }\n'
    )
    config = load_config(path)
    assert config.is_ensemble and config.flavor == "ensemble" and config.instance_group == []
    rendered = config.to_dict()
    assert rendered["platform"] == "ensemble" and rendered["instance_group"] == []
    assert rendered["ensemble_scheduling"] == {
        "step": [
            {"model_name": "scaler", "model_version": -1, "input_map": {"raw": "RAW"}, "output_map": {"scaled": "OUT"}}
        ]
    }
    assert plan_ensemble(config, COMPOSING).steps[0].version is None


def test_unknown_composing_model() -> None:
    message = _refusal(lambda d: _steps(d)[1].update(model_name="clasifier"))
    assert "step 1 (model 'clasifier'): no such model in the repository" in message
    assert "'classifier'" in message  # what it has


def test_unserved_version() -> None:
    message = _refusal(lambda d: _steps(d)[0].update(model_version=3))
    assert "step 0 (model 'scaler'): model_version 3 is not served (versions: 1)" in message


def test_input_map_key_not_an_input() -> None:
    message = _refusal(lambda d: _steps(d)[1].update(input_map={"feature": "scaled"}))
    assert "step 1 (model 'classifier'): input_map 'feature' (tensor 'scaled') is not an input" in message
    assert "'features'" in message


def test_output_map_key_not_an_output_names_the_key() -> None:
    def change(document: dict[str, Any]) -> None:
        _steps(document)[2]["output_map"] = {"probs": "PROBABILITIES", "label": "LABEL"}

    message = _refusal(change)
    assert "step 2 (model 'post'): output_map 'probs' (tensor 'PROBABILITIES') is not an output" in message


def test_datatype_mismatch_names_both_sides() -> None:
    def change(document: dict[str, Any]) -> None:
        document["input"][0]["data_type"] = "TYPE_FP64"

    message = _refusal(change)
    assert "step 0 (model 'scaler'): input_map 'raw' reads tensor 'RAW'" in message
    assert "FP64" in message and "FP32" in message


def test_datatype_mismatch_of_an_ensemble_output() -> None:
    def change(document: dict[str, Any]) -> None:
        document["output"][1]["data_type"] = "TYPE_INT32"

    message = _refusal(change)
    assert "step 2 (model 'post'): output 'LABEL'" in message and "INT64" in message and "INT32" in message


def test_incompatible_shapes() -> None:
    def change(document: dict[str, Any]) -> None:
        document["input"][0]["dims"] = [5]

    message = _refusal(change)
    assert "step 0 (model 'scaler'): input_map 'raw' reads tensor 'RAW'" in message
    assert "[-1, 5]" in message and "[-1, 4]" in message


def test_ensemble_input_never_consumed() -> None:
    message = _refusal(lambda d: d["input"].append({"name": "EXTRA", "data_type": "TYPE_FP32", "dims": [1]}))
    assert message == "ensemble 'pipeline': input 'EXTRA' is read by no step"


def test_ensemble_output_never_produced() -> None:
    message = _refusal(lambda d: d["output"].append({"name": "MISSING", "data_type": "TYPE_FP32", "dims": [1]}))
    assert message == "ensemble 'pipeline': output 'MISSING' is written by no step"


def test_tensor_produced_twice() -> None:
    message = _refusal(lambda d: _steps(d)[1].update(output_map={"logits": "scaled"}))
    assert (
        "step 1 (model 'classifier'): output_map 'logits' writes tensor 'scaled', which is written by step 0" in message
    )


def test_tensor_read_but_never_written() -> None:
    message = _refusal(lambda d: _steps(d)[2].update(input_map={"logits": "logit"}))
    assert "step 2 (model 'post'): input_map 'logits' reads tensor 'logit', which no step writes" in message


def test_intermediate_tensor_never_read() -> None:
    def change(document: dict[str, Any]) -> None:
        _steps(document)[2]["input_map"] = {"logits": "scaled"}

    message = _refusal(change)
    assert "step 1 (model 'classifier'): output_map 'logits' writes tensor 'logits', which no step reads" in message


def test_cycle_names_the_step_the_tensor_and_the_loop() -> None:
    def change(document: dict[str, Any]) -> None:
        _steps(document)[1]["input_map"] = {"features": "feedback"}
        _steps(document).append(_step("scaler", {"raw": "logits"}, {"scaled": "feedback"}))
        _steps(document)[0]["output_map"] = {"scaled": "SCALED"}
        document["output"].append({"name": "SCALED", "data_type": "TYPE_FP32", "dims": [4]})

    message = _refusal(change)
    assert "step 1 (model 'classifier'): reads tensor 'feedback', which depends on its own output" in message
    assert "(step 1 → step 3 → step 1)" in message


def test_a_step_reading_its_own_output_is_a_cycle() -> None:
    message = _refusal(lambda d: _steps(d)[1].update(input_map={"features": "logits"}))
    assert "step 1 (model 'classifier'): reads tensor 'logits'" in message and "(step 1 → step 1)" in message


def test_ensemble_batches_at_most_what_each_step_does() -> None:
    message = _refusal(lambda d: d.update(max_batch_size=12))
    assert "step 0 (model 'scaler'): the ensemble's max_batch_size is 12, but the model's is 8" in message


def test_a_required_input_left_unmapped() -> None:
    composing = {
        **COMPOSING,
        "classifier": {
            "1": _model("classifier", [("features", "FP32", [4]), ("mask", "BOOL", [4])], [("logits", "FP32", [3])])
        },
    }
    message = _refusal(lambda d: None, composing)
    assert "step 1 (model 'classifier'): input_map does not give the model's input 'mask'" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(instance_group=[{"count": 2}]), "instance_group: an ensemble runs no instances"),
        (lambda d: d.update(dynamic_batching={}), "dynamic_batching: an ensemble does not batch"),
        (lambda d: d.pop("ensemble_scheduling"), "ensemble_scheduling: an ensemble needs its steps"),
        (lambda d: d["ensemble_scheduling"].update(step=[]), "ensemble_scheduling.step"),
        (lambda d: _steps(d)[0].update(input_map={}), "must map at least one tensor"),
        (lambda d: d.pop("platform"), "ensemble_scheduling: only an ensemble has steps"),
    ],
)
def test_the_config_itself_refuses_what_triton_refuses(change: Any, expected: str) -> None:
    document = copy.deepcopy(ENSEMBLE)
    change(document)
    with pytest.raises(ValidationError, match=expected):
        config_from_dict(document)
