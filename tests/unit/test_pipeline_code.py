"""Python steps of a pipeline: modules imported per pipeline (two pipelines may both have a
``prepost.py``), and a function's answer checked against its declared outputs, naming the step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelport.core.errors import ValidationError
from modelport.runtime.pipeline_code import StepFunctionError, load_functions
from modelport.schema.base import parse
from modelport.schema.pipeline import PipelineSpec


def _spec(entry: str = "prepost:double", datatype: str = "FP32") -> PipelineSpec:
    document = {
        "kind": "pipeline",
        "code": "steps",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
        "steps": [
            {
                "name": "double",
                "python": entry,
                "inputs": {"x": "x"},
                "outputs": {"y": "y"},
                "signature": {"outputs": [{"name": "y", "datatype": datatype, "shape": [-1, 2]}]},
            }
        ],
        "outputs": [{"name": "y", "datatype": datatype, "shape": [-1, 2]}],
    }
    return parse(PipelineSpec, document).value


def _code(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "prepost.py").write_text(body)
    return folder


ROWS = np.arange(6, dtype=np.float32).reshape(3, 2)


def test_each_pipeline_imports_its_own_module_of_the_same_name(tmp_path: Path) -> None:
    first = _code(tmp_path / "a", "def double(inputs):\n    return {'y': inputs['x'] * 2}\n")
    second = _code(tmp_path / "b", "def double(inputs):\n    return {'y': inputs['x'] * 3}\n")
    one = load_functions("one", _spec(), first)["double"]
    two = load_functions("two", _spec(), second)["double"]
    np.testing.assert_array_equal(one({"x": ROWS})["y"], ROWS * 2)
    np.testing.assert_array_equal(two({"x": ROWS})["y"], ROWS * 3)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("return {'z': inputs['x']}", "returned no 'y' (it returned ['z'])"),
        ("return {'y': inputs['x'].astype('float64')}", "output 'y' is FP64; the signature declares FP32"),
        ("return {'y': inputs['x'][:1]}", "output 'y' has shape [1, 2] for 3 rows; the signature declares [-1, 2]"),
        ("return [inputs['x']]", "returned list, not a dict of arrays"),
        ("raise KeyError('w')", "KeyError: 'w'"),
    ],
)
def test_a_wrong_answer_fails_the_call_naming_the_step(tmp_path: Path, body: str, reason: str) -> None:
    code = _code(tmp_path / "steps", f"def double(inputs):\n    {body}\n")
    step = load_functions("p", _spec(), code)["double"]
    with pytest.raises(StepFunctionError) as caught:
        step({"x": ROWS})
    assert str(caught.value).startswith(f"pipeline 'p': step 'double' (python prepost:double): {reason}")


def test_a_missing_function_is_refused_naming_the_step(tmp_path: Path) -> None:
    code = _code(tmp_path / "steps", "def other(inputs):\n    return inputs\n")
    with pytest.raises(ValidationError) as caught:
        load_functions("p", _spec(), code)
    assert (
        str(caught.value)
        == "pipeline 'p': step 'double' (python prepost:double): module prepost has no function double()"
    )
