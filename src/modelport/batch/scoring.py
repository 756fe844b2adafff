"""What scores one mini-batch inside a worker: an Azure ML batch scoring script, or, with no
script, the deployment's model itself ("no-code").

A script is imported once per worker, ``init()`` runs once, then ``run(mini_batch)`` per
mini-batch with a list of file paths or a pandas DataFrame of rows. The no-code scorer feeds
a table's columns to the model's :class:`~modelport.runtime.predictor.Predictor` and returns
a table of ``row``, the prediction columns and ``file_name``, the columns Azure's MLflow batch
scoring writes.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa

from modelport.batch.inputs import Segment
from modelport.core.errors import ModelportError, ValidationError
from modelport.core.names import parse_ref
from modelport.registry.flavors.pipelines import PIPELINE, read_pipeline
from modelport.registry.sources import sources_from_repository
from modelport.runtime.completion import complete_config
from modelport.runtime.config import ModelConfig, config_from_dict
from modelport.runtime.ensemble_predictor import EnsemblePredictor
from modelport.runtime.pipeline import RegisteredPipeline
from modelport.runtime.pipeline_predictor import PipelinePredictor
from modelport.runtime.predictor import Predictor, TensorMeta, load_predictor, numpy_dtype


class ScriptError(ModelportError):
    """The scoring script cannot be used at all (no ``run``, does not import): retrying is pointless."""


def check_script(path: Path) -> None:
    """Refuse a scoring script that does not parse or binds no top-level ``run``; never imported."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as exc:
        raise ValidationError(f"code_configuration.scoring_script: {path} line {exc.lineno}: {exc.msg}") from None
    if "run" not in _top_level_names(tree):
        raise ValidationError(f"code_configuration.scoring_script: {path} defines no run(mini_batch) function")


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


class ScriptScorer:
    """Hosts one scoring script: imported with its folder on ``sys.path``, ``init()`` called once."""

    def __init__(self, script: Path) -> None:
        sys.path.insert(0, str(script.parent))
        self.module = _import(script)
        run = getattr(self.module, "run", None)
        if not callable(run):
            raise ScriptError(f"{script.name}: defines no run(mini_batch) function")
        self._run: Callable[[Any], Any] = run
        init = getattr(self.module, "init", None)
        if callable(init):
            init()

    def run(self, mini_batch: list[str] | pa.Table, segments: Sequence[Segment] | None, names: Sequence[str]) -> Any:
        return self._run(mini_batch if isinstance(mini_batch, list) else mini_batch.to_pandas())


def _import(script: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(script.stem, script)
    if spec is None or spec.loader is None:
        raise ScriptError(f"{script}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[script.stem] = module
    spec.loader.exec_module(module)
    return module


TRITON = "triton"  # a registered Triton model repository


@dataclass(frozen=True)
class StepModel:
    """A step of a pipeline deployment's model: the version it pins, its flavor, and its local path."""

    ref: str
    flavor: str
    path: str


class NoCodeScorer:
    """Scores table rows with the deployment's model: the columns are its features. A pipeline
    is its steps' models run one after another in this worker (``steps``: step name → model); a
    Triton repository holding one ensemble is that ensemble, its composing models run the same way."""

    def __init__(
        self, flavor: str, model_path: Path, threads: int, steps: Mapping[str, StepModel] | None = None
    ) -> None:
        """``threads`` per worker keeps several workers from each claiming every core."""
        config = config_from_dict({"name": "batch", "parameters": {"intra_op_thread_count": str(threads)}})
        if flavor == PIPELINE:
            self.predictor: Predictor = _pipeline(model_path, steps or {}, config)
        elif flavor == TRITON:
            self.predictor = _ensemble(model_path, config)
        else:
            self.predictor = load_predictor(flavor, model_path, config)

    def run(
        self, mini_batch: list[str] | pa.Table, segments: Sequence[Segment] | None, names: Sequence[str]
    ) -> pa.Table:
        if isinstance(mini_batch, list) or segments is None:
            raise ValidationError("no-code deployments score tabular inputs only; use --input-type tabular")
        outputs = self.predictor.predict(model_inputs(mini_batch, self.predictor.inputs))
        columns: dict[str, Any] = {"row": np.concatenate([np.arange(s.first, s.first + s.count) for s in segments])}
        single = len(outputs) == 1
        for name, array in outputs.items():
            label = "prediction" if single else name
            flat = array.reshape(len(array), -1)
            if array.ndim == 1 or flat.shape[1] == 1:
                columns[label] = flat[:, 0]
            else:
                columns.update({f"{label}_{i}": flat[:, i] for i in range(flat.shape[1])})
        files = np.repeat(np.arange(len(segments), dtype=np.int32), [s.count for s in segments])
        columns["file_name"] = pa.DictionaryArray.from_arrays(files, pa.array([names[s.file] for s in segments]))
        return pa.table(columns)


def _ensemble(repository: Path, batch: ModelConfig) -> Predictor:
    """The one ensemble of ``repository`` over its composing models, each loaded with its own
    config (``batch``'s thread count added) and completed from the loaded model, as ``serve`` does."""
    sources = sources_from_repository(repository)
    ensembles = [s for s in sources if s.config is not None and s.config.is_ensemble]
    if len(ensembles) != 1:
        found = ", ".join(s.name for s in ensembles) or "none"
        raise ValidationError(
            f"model repository {repository.name}: a no-code batch deployment runs the repository's one ensemble "
            f"(it has {found})"
        )
    loaded: dict[tuple[str, str], Predictor] = {}
    composing: dict[str, dict[str, ModelConfig]] = {}
    try:
        for source in sources:
            if source is ensembles[0]:
                continue
            config = (source.config or batch.replace(name=source.name)).replace(
                parameters={**batch.parameters, **(source.config.parameters if source.config else {})}
            )
            predictor = load_predictor(source.flavor, source.path, config)
            loaded[source.name, str(source.version)] = predictor
            completed = complete_config(config, predictor, name=source.name, flavor=source.flavor)
            composing.setdefault(source.name, {})[str(source.version)] = completed
        ensemble = ensembles[0].config
        assert ensemble is not None
        return EnsemblePredictor(ensemble, loaded, composing)
    except BaseException:
        for predictor in loaded.values():
            predictor.close()
        raise


def _pipeline(path: Path, steps: Mapping[str, StepModel], config: ModelConfig) -> Predictor:
    pins = {}
    for step, model in steps.items():
        ref = parse_ref(model.ref)
        assert ref.version is not None, "registration pins versions"
        pins[step] = (ref.name, ref.version)
    loaded: dict[str, Predictor] = {}
    try:
        for step, model in steps.items():
            loaded[step] = load_predictor(model.flavor, Path(model.path), config)
        spec = read_pipeline(path)
        code = None if spec.code is None else path.parent / spec.code
        return PipelinePredictor(path.stem, RegisteredPipeline(spec, pins, code), loaded)
    except BaseException:
        for predictor in loaded.values():
            predictor.close()
        raise


def model_inputs(table: pa.Table, metas: Sequence[TensorMeta]) -> dict[str, np.ndarray]:
    """A model's input arrays from a table: columns named after the inputs, one input each; or,
    for a model with one ``[batch, features]`` input, all columns in order as its features."""
    names = set(table.column_names)
    if all(meta.name in names for meta in metas):
        arrays = {}
        for meta in metas:
            array = _numpy(table.column(meta.name), meta)
            arrays[meta.name] = array.reshape((-1,) + (1,) * (len(meta.shape) - 1))
        return arrays
    if len(metas) != 1 or len(metas[0].shape) != 2:
        wanted = ", ".join(meta.name for meta in metas)
        raise ValidationError(f"input: the table's columns must include the model's inputs ({wanted})")
    meta = metas[0]
    features = meta.shape[1]
    if features not in (-1, table.num_columns):
        raise ValidationError(
            f"input: the model takes {features} features per row; the table has {table.num_columns} columns"
        )
    return {meta.name: np.column_stack([_numpy(column, meta) for column in table.columns])}


def _numpy(column: pa.ChunkedArray, meta: TensorMeta) -> np.ndarray:
    try:
        return column.to_numpy().astype(numpy_dtype(meta.datatype), copy=False)
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise ValidationError(f"input {meta.name!r}: column cannot be read as {meta.datatype} ({exc})") from None
