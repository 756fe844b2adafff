"""A pipeline's Python steps: functions of its code folder, imported, checked and called on rows.

A Python step (``python: MODULE:FUNCTION``) is the scaler, tokenizer or label lookup around the
models, as a Triton Python-backend model or a BentoML service function is. Its function takes a
dict of numpy arrays (the step's inputs, by the names of ``inputs``' keys, holding the rows the
step runs on) and returns a dict of arrays; what it returns is checked against the outputs its
``signature`` declares (every mapped output given, the declared datatype, one row per input row,
the declared dims), so a wrong answer fails the request naming the step rather than corrupting
the next step's input.

Modules are imported from the pipeline's code folder under a private module name each (two
pipelines may each have a ``prepost.py``), with the folder appended to ``sys.path`` so that their
own imports of sibling modules work, as a scoring script's do. Registration imports them in a
child process (:func:`check_functions`, run as ``python -m modelport.runtime.pipeline_code``): the
registering process, which may be the daemon, never runs the code it stores.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from modelport.core.datatypes import datatype_of
from modelport.core.errors import ModelportError, ValidationError
from modelport.schema.pipeline import PipelineSpec, PipelineStep

CHECK_TIMEOUT_S = 120.0  # importing a step's module at registration: a hung import is refused

_MODULE_IDS = itertools.count(1)
_IMPORTING = threading.Lock()  # sys.path and sys.modules edits, one import at a time


class StepFunctionError(ModelportError):
    """A Python step failed or returned what its signature does not declare: a 500 naming the step."""

    http_status = 500


def module_file(code: Path, module: str) -> Path | None:
    """The file of ``module`` (dotted) in ``code``: ``a/b.py`` or the package ``a/b/__init__.py``."""
    base = code.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _where(name: str, step: PipelineStep) -> str:
    return f"pipeline {name!r}: step {step.name!r} (python {step.python})"


def _import(code: Path, module: str) -> ModuleType:
    file = module_file(code, module)
    if file is None:
        raise ValidationError(f"module {module!r} is not in the code folder ({module.replace('.', '/')}.py)")
    with _IMPORTING:
        if str(code) not in sys.path:
            sys.path.append(str(code))
        unique = f"modelport_step_{next(_MODULE_IDS)}"
        spec = importlib.util.spec_from_file_location(
            unique, file, submodule_search_locations=[str(file.parent)] if file.name == "__init__.py" else None
        )
        assert spec is not None and spec.loader is not None, "a .py file has a source loader"
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[unique] = loaded  # dataclasses, pickle and typing look the module up here
        try:
            spec.loader.exec_module(loaded)
        except BaseException as exc:
            del sys.modules[unique]
            raise ValidationError(f"import of {module} failed: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    return loaded


def _function(module: ModuleType, step: PipelineStep) -> Callable[[dict[str, np.ndarray]], Any]:
    found = getattr(module, step.function, None)
    if not callable(found):
        raise ValidationError(f"module {step.module} has no function {step.function}()")
    return found


class StepFunction:
    """One Python step, imported: called with the step's inputs, its answer checked."""

    def __init__(self, where: str, step: PipelineStep, function: Callable[[dict[str, np.ndarray]], Any]) -> None:
        assert step.signature is not None
        self.where = where
        self._function = function
        declared = {t.name: t for t in step.signature.outputs}
        self._outputs = {key: declared[key] for key in step.outputs if key in declared}  # planning refuses others

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = next(iter(inputs.values())).shape[0]
        try:
            answer = self._function(dict(inputs))
        except Exception as exc:  # the step's own failure, reported with its context
            raise StepFunctionError(f"{self.where}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
        if not isinstance(answer, Mapping):
            raise StepFunctionError(f"{self.where}: returned {type(answer).__name__}, not a dict of arrays")
        outputs = {}
        for key, tensor in self._outputs.items():
            if key not in answer:
                raise StepFunctionError(f"{self.where}: returned no {key!r} (it returned {sorted(map(str, answer))})")
            array = np.asarray(answer[key])
            datatype = datatype_of(array)
            if datatype != tensor.datatype:
                raise StepFunctionError(
                    f"{self.where}: output {key!r} is {datatype}; the signature declares {tensor.datatype}"
                )
            fits = array.ndim == len(tensor.shape) and all(d == -1 or d == n for d, n in zip(tensor.shape, array.shape))
            if not fits or array.shape[0] != rows:
                raise StepFunctionError(
                    f"{self.where}: output {key!r} has shape {list(array.shape)} for {rows} rows; the signature "
                    f"declares {tensor.shape} (-1: any size, the first one the rows)"
                )
            outputs[key] = array
        return outputs


def load_functions(name: str, spec: PipelineSpec, code: Path | None) -> dict[str, StepFunction]:
    """Every Python step of pipeline ``name``, by step name, each module imported once; one line
    naming the step when a module does not import or lacks its function."""
    modules: dict[str, ModuleType] = {}
    loaded = {}
    for step in spec.python_steps:
        where = _where(name, step)
        try:
            assert code is not None, "the definition requires code: for a Python step"
            if step.module not in modules:
                modules[step.module] = _import(code, step.module)
            loaded[step.name] = StepFunction(where, step, _function(modules[step.module], step))
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc}") from None
    return loaded


def check_functions(name: str, spec: PipelineSpec, code: Path) -> None:
    """Refuse pipeline ``name`` when a Python step's module is not in ``code``, does not import,
    or has no such function: the module files are looked for here, the imports run in a child."""
    steps = spec.python_steps
    for step in steps:
        if module_file(code, step.module) is None:
            raise ValidationError(
                f"{_where(name, step)}: module {step.module!r} is not in the code folder {spec.code} "
                f"({step.module.replace('.', '/')}.py)"
            )
    if not steps:
        return
    definition = spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    document = json.dumps({"name": name, "code": str(code), "spec": definition})
    try:
        done = subprocess.run(
            [sys.executable, "-m", __name__],
            input=document,
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ValidationError(
            f"pipeline {name!r}: importing its Python steps took over {CHECK_TIMEOUT_S:g} s; refused"
        ) from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ValidationError(f"pipeline {name!r}: checking its Python steps failed: {last}")
    problem = json.loads(lines[-1]).get("error")
    if problem:
        raise ValidationError(problem)


def _check_main() -> None:
    """The child of :func:`check_functions`: import every step, print the first problem (or none)."""
    from modelport.schema.base import parse

    document = json.loads(sys.stdin.read())
    spec = parse(PipelineSpec, document["spec"]).value
    try:
        load_functions(document["name"], spec, Path(document["code"]))
        error = None
    except ValidationError as exc:
        error = str(exc)
    sys.stdout.write("\n" + json.dumps({"error": error}) + "\n")  # after whatever the imports printed


if __name__ == "__main__":
    _check_main()
