"""Pipelines without a server: the definition's checks, the plan's edge checks (one line naming
step and tensor), and the per-row rules — conditions, gathering rows, merging answers in order."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import pytest

from modelport.core.errors import ValidationError
from modelport.runtime.pipeline import (
    RegisteredPipeline,
    Rows,
    StepModel,
    common_rows,
    condition_rows,
    gather,
    merge_first,
    plan_pipeline,
)
from modelport.runtime.pipeline_predictor import PipelinePredictor
from modelport.runtime.predictor import Predictor, TensorMeta
from modelport.schema.base import parse
from modelport.schema.pipeline import Condition, PipelineSpec

CASCADE = {
    "kind": "pipeline",
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 16]}],
    "steps": [
        {"name": "small", "model": "small@prod", "inputs": {"input": "x"}, "outputs": {"output": "small_probs"}},
        {
            "name": "large",
            "model": "large:1",
            "when": {"tensor": "small_probs", "reduce": "max", "below": 0.9},
            "inputs": {"input": "x"},
            "outputs": {"output": "large_probs"},
        },
    ],
    "outputs": [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 4], "from": ["large_probs", "small_probs"]}
    ],
}
PINS = {"small": ("small", 2), "large": ("large", 1)}


def _model(ref: str, width: int = 16, datatype: str = "FP32") -> StepModel:
    return StepModel(ref, {"input": (datatype, (-1, width))}, {"output": ("FP32", (-1, 4))})


MODELS = {"small": _model("small:2"), "large": _model("large:1")}


def _spec(document: dict) -> PipelineSpec:
    return parse(PipelineSpec, document).value


def test_the_cascade_plans_with_pinned_versions_and_first_available_outputs() -> None:
    plan = plan_pipeline("cascade", _spec(CASCADE), PINS, MODELS)
    assert [(s.step, s.model_name, s.version) for s in plan.steps] == [("small", "small", "2"), ("large", "large", "1")]
    assert plan.steps[1].needs == {"x", "small_probs"}  # the condition's tensor is awaited too
    assert plan.sources == {"probabilities": ("large_probs", "small_probs")}
    assert plan.composing == (("small", "2"), ("large", "1"))


def _broken(path: list, value: object) -> dict:
    document = copy.deepcopy(CASCADE)
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "models", "expected"),
    [
        (
            ["steps", 1, "inputs"],
            {"inputs": "x"},
            MODELS,
            "pipeline 'cascade': step 'large' (model large:1): inputs 'inputs' (tensor 'x') is not an input of the model",
        ),
        (
            ["steps", 1, "inputs"],
            {"input": "large_probs"},
            MODELS,
            "step 'large' (model large:1): inputs 'input' reads tensor 'large_probs', which is neither a pipeline input",
        ),
        (
            ["steps", 0, "inputs"],
            {"input": "x"},
            {**MODELS, "small": _model("small:2", datatype="FP64")},
            "step 'small' (model small:2): inputs 'input' reads tensor 'x': the tensor is FP32 as a pipeline input, "
            "but the model takes FP64",
        ),
        (
            ["steps", 0, "inputs"],
            {"input": "x"},
            {**MODELS, "small": _model("small:2", width=8)},
            "inputs 'input' reads tensor 'x': the tensor has shape [-1, 16] as a pipeline input, but the model has "
            "[-1, 8]",
        ),
        (
            ["steps", 1, "when"],
            {"tensor": "nothing", "below": 0.5},
            MODELS,
            "step 'large' (model large:1): when.tensor 'nothing' is neither a pipeline input nor written by an earlier",
        ),
        (
            ["outputs", 0, "from"],
            ["small_probs", "large_probs"],
            MODELS,
            "output 'probabilities': from 'large_probs', the last tensor listed, does not have every row",
        ),
    ],
)
def test_a_broken_edge_is_refused_in_one_line_naming_step_and_tensor(
    path: list, value: object, models: dict, expected: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        plan_pipeline("cascade", _spec(_broken(path, value)), PINS, models)
    assert expected in str(refused.value) and "\n" not in str(refused.value)


def test_a_step_after_a_conditional_one_has_only_its_rows() -> None:
    document = copy.deepcopy(CASCADE)
    document["steps"].append(
        {"name": "again", "model": "small:2", "inputs": {"input": "x2"}, "outputs": {"output": "again_probs"}}
    )
    document["steps"][1]["outputs"] = {"output": "large_probs"}
    document["inputs"].append({"name": "x2", "datatype": "FP32", "shape": [-1, 16]})
    document["steps"][2]["inputs"] = {"input": "x2"}
    plan = plan_pipeline("p", _spec(document), {**PINS, "again": ("small", 2)}, {**MODELS, "again": _model("s:2")})
    assert plan.steps[2].needs == {"x2"}


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ({"tensor": "p", "below": 0.9}, [False, True, True]),
        ({"tensor": "p", "reduce": "min", "at_least": 0.05}, [False, True, False]),
        ({"tensor": "p", "reduce": "sum", "at_most": 1.01}, [True, True, True]),
        ({"tensor": "p", "reduce": "mean", "above": 0.5}, [False, False, False]),
    ],
)
def test_conditions_hold_per_row(when: dict, expected: list[bool]) -> None:
    probabilities = np.array([[0.95, 0.05, 0.0], [0.5, 0.3, 0.2], [0.89, 0.11, 0.0]], dtype=np.float32)
    condition = parse(Condition, when).value
    assert condition_rows(condition, probabilities).tolist() == expected


def test_reduce_none_reads_one_value_per_row_and_no_rows_is_no_rows() -> None:
    condition = parse(Condition, {"tensor": "score", "reduce": "none", "above": 0}).value
    assert condition_rows(condition, np.array([[1], [-1], [3]], dtype=np.int64)).tolist() == [True, False, True]
    assert condition_rows(condition, np.zeros((0, 1))).tolist() == []


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ({"tensor": "p"}, "when: give exactly one of below, at_most, above, at_least"),
        ({"tensor": "p", "below": 1, "above": 0}, "(got below, above)"),
        ({"tensor": "p", "below": 1, "reduce": "median"}, "when.reduce: 'median' is not one of max, min"),
        ({"tensor": "p", "below": "high"}, "when.below: expected a number, got 'high'"),
    ],
)
def test_a_bad_condition_is_refused_by_its_path(when: dict, expected: str) -> None:
    document = _broken(["steps", 1, "when"], when)
    with pytest.raises(ValidationError) as refused:
        _spec(document)
    assert expected in str(refused.value)


def test_rows_are_gathered_and_merged_back_in_request_order() -> None:
    total = 6
    small = Rows(np.arange(total * 2, dtype=np.float32).reshape(total, 2))
    unsure = np.array([1, 4, 5])
    large = Rows(-np.arange(6, dtype=np.float32).reshape(3, 2), unsure)
    merged = merge_first(total, [large, small])
    expected = small.data.copy()
    expected[unsure] = large.data
    np.testing.assert_array_equal(merged, expected)
    # a later step on the large step's rows reads them back by row number
    np.testing.assert_array_equal(gather(large, np.array([4, 5])), large.data[1:])
    np.testing.assert_array_equal(gather(small, unsure), small.data[unsure])
    assert common_rows([small, large]).tolist() == [1, 4, 5]
    assert common_rows([small]) is None


def test_a_step_that_ran_on_no_row_leaves_the_fallback_whole() -> None:
    small = Rows(np.ones((3, 2), dtype=np.float32))
    skipped = Rows(None, np.zeros(0, dtype=np.int64))
    assert merge_first(3, [skipped, small]) is small.data


def test_a_row_nobody_answered_is_an_error_not_garbage() -> None:
    with pytest.raises(ValidationError, match=r"rows \[0, 2\] have no value"):
        merge_first(3, [Rows(np.ones((1, 2)), np.array([1]))])


class _Recording(Predictor):
    """A step model answering a fixed row of ``answer`` per input row, recording the rows it was given."""

    batch_dim = True

    def __init__(self, answer: np.ndarray) -> None:
        self.inputs = [TensorMeta("input", "FP32", (-1, 16))]
        self.outputs = [TensorMeta("output", "FP32", (-1, 4))]
        self.answer, self.seen = answer, []

    def _predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = inputs["input"][:, 0].astype(int)  # the test writes each row's number in column 0
        self.seen.append(rows.tolist())
        return {"output": self.answer[rows]}


def test_a_pipeline_predictor_sends_the_large_step_only_its_rows_and_merges_in_order() -> None:
    x = np.zeros((5, 16), dtype=np.float32)
    x[:, 0] = np.arange(5)
    small = _Recording(np.array([[0.95, 0.05, 0, 0], [0.5, 0.5, 0, 0], [0.99, 0, 0, 0.01], [0.4] * 4, [1, 0, 0, 0]]))
    large = _Recording(np.full((5, 4), 7.0))
    predictor = PipelinePredictor("cascade", RegisteredPipeline(_spec(CASCADE), PINS), {"small": small, "large": large})
    answer = predictor.predict({"x": x})["probabilities"]
    assert small.seen == [[0, 1, 2, 3, 4]] and large.seen == [[1, 3]]
    np.testing.assert_array_equal(answer[[0, 2, 4]], small.answer[[0, 2, 4]])
    np.testing.assert_array_equal(answer[[1, 3]], np.full((2, 4), 7.0))
    sure = x[[0, 2, 4]]
    predictor.predict({"x": sure})
    assert large.seen == [[1, 3]]  # not called: no row needed it
