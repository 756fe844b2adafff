"""Signatures a model's files do not record, given at registration: inferred from an input
example (as MLflow's ``infer_signature``), or read from a signature file.

Pickled and tree models record no signature, and the registry never unpickles to ask the model
(``n_features_in_`` is read when the model is served). So ``model register --input-example FILE``
infers the input from a sample, and ``--signature FILE`` states inputs and outputs outright.
An example is data only: JSON, CSV, a ``.npy`` array (read without pickles) or Parquet. A table
(CSV, Parquet, a JSON list of rows or a split DataFrame) is one ``input-0`` tensor of shape
``[-1, F]``, as tabular models take it; a JSON object of named arrays is one input per name.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from modelport.core.datatypes import datatype_of
from modelport.core.errors import ValidationError
from modelport.registry.flavors.mlflow import mlflow_specs
from modelport.runtime import flavor_catalog
from modelport.runtime.flavor_info import Signature, TensorSpec
from modelport.runtime.flavors import DEFAULT_INPUT as TABLE_INPUT

_PAYLOAD_KEYS = ("input_data", "data", "inputs")  # Azure ML / MLflow request bodies


def signature_from_example(path: Path) -> Signature:
    """The input signature of the sample in ``path`` (no outputs: nothing is run)."""
    readers = {".json": _json_example, ".csv": _csv_example, ".npy": _npy_example, ".parquet": _parquet_example}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise ValidationError(f"--input-example: {path}: expected a .json, .csv, .npy or .parquet file")
    try:
        named = reader(path)
    except OSError as exc:
        raise ValidationError(f"--input-example: {path}: cannot be read ({exc.strerror or exc})") from None
    return Signature(tuple(_spec(name, array, path) for name, array in named.items()), ())


def signature_from_file(path: Path) -> Signature:
    """A YAML or JSON signature: ``inputs``/``outputs`` lists of ``{name, datatype, shape}`` (v2
    names), or MLflow's (``{type: tensor, tensor-spec: {dtype, shape}}`` or columns ``{name, type}``)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationError(f"--signature: {path}: cannot be read ({exc.strerror or exc})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValidationError(f"--signature: {path}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(document, dict) or not set(document) & {"inputs", "outputs"}:
        raise ValidationError(f"--signature: {path}: expected a mapping with inputs (and outputs)")
    sides = {}
    for side in ("inputs", "outputs"):
        items = document.get(side) or []
        if isinstance(items, str) or (
            isinstance(items, list) and any(isinstance(i, dict) and "type" in i for i in items)
        ):
            unsupported: dict[str, str] = {}
            sides[side] = mlflow_specs(items, side[:-1], path, unsupported)
            if unsupported:
                name, kind = next(iter(unsupported.items()))
                raise ValidationError(f"--signature: {path}: {side[:-1]} {name!r} of type {kind} cannot be a tensor")
            continue
        if not isinstance(items, list):
            raise ValidationError(f"--signature: {path}: {side} must be a list")
        try:
            sides[side] = tuple(TensorSpec.from_dict(item, f"{side}[{i}]") for i, item in enumerate(items))
        except ValidationError as exc:
            raise ValidationError(f"--signature: {path}: {exc}") from None
    return Signature(sides["inputs"], sides["outputs"])


def check_fits(signature: Signature, flavor: str) -> None:
    """A tabular model takes one ``[rows, features]`` input: a given signature must say so."""
    if not flavor_catalog.is_tabular(flavor):
        return
    inputs = signature.inputs
    if len(inputs) != 1 or len(inputs[0].shape) != 2 or inputs[0].shape[0] != -1:
        described = ", ".join(f"{spec.name} {list(spec.shape)}" for spec in inputs) or "none"
        raise ValidationError(
            f"signature: a {flavor} model takes one input of shape [-1, F] (rows, features); given {described}"
        )


def _spec(name: str, array: np.ndarray, path: Path) -> TensorSpec:
    if array.ndim == 0 or array.shape[0] == 0:
        raise ValidationError(f"--input-example: {path}: {name!r} holds no rows")
    try:
        datatype = datatype_of(array.dtype)
    except ValidationError:
        raise ValidationError(f"--input-example: {path}: {name!r} has values of no tensor datatype") from None
    return TensorSpec(name, datatype, (-1, *array.shape[1:]))


def _json_example(path: Path) -> dict[str, np.ndarray]:
    try:
        value: Any = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"--input-example: {path}: not valid JSON ({exc})") from None
    if isinstance(value, dict):
        value = next((value[key] for key in _PAYLOAD_KEYS if key in value), value)
    if isinstance(value, dict) and {"columns", "data"} <= set(value):  # a split DataFrame
        value = value["data"]
    named = value if isinstance(value, dict) else {TABLE_INPUT: value}
    arrays = {}
    for name, rows in named.items():
        try:
            arrays[str(name)] = np.asarray(rows)
        except ValueError:
            raise ValidationError(f"--input-example: {path}: {name!r} is ragged (rows of different lengths)") from None
    return arrays


def _csv_example(path: Path) -> dict[str, np.ndarray]:
    """A header row, then numbers: integer columns stay integers, the table takes their common type."""
    with path.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.reader(stream))
    if len(rows) < 2:
        raise ValidationError(f"--input-example: {path}: expected a header row and at least one row")
    header, body = rows[0], rows[1:]
    columns = []
    for index, name in enumerate(header):
        cells = [row[index] if index < len(row) else "" for row in body]
        columns.append(_numbers(cells, name, path))
    return {TABLE_INPUT: np.column_stack(columns)}


def _numbers(cells: list[str], column: str, path: Path) -> np.ndarray:
    for dtype in (np.int64, np.float64):
        try:
            return np.array([dtype(cell) for cell in cells], dtype=dtype)
        except ValueError:
            continue
    raise ValidationError(
        f"--input-example: {path}: column {column!r} is not numeric; a table example is one "
        "numeric [rows, features] input"
    )


def _npy_example(path: Path) -> dict[str, np.ndarray]:
    try:
        return {TABLE_INPUT: np.load(path, allow_pickle=False)}
    except ValueError as exc:  # not an array file, or one holding Python objects (a pickle)
        raise ValidationError(f"--input-example: {path}: not a .npy array without objects ({exc})") from None


def _parquet_example(path: Path) -> dict[str, np.ndarray]:
    import pyarrow.parquet
    import pyarrow.types

    try:
        table = pyarrow.parquet.read_table(path)
    except pyarrow.ArrowException as exc:
        raise ValidationError(f"--input-example: {path}: not a Parquet file ({exc})") from None
    for name, column in zip(table.column_names, table.columns):
        if not (pyarrow.types.is_integer(column.type) or pyarrow.types.is_floating(column.type)):
            raise ValidationError(
                f"--input-example: {path}: column {name!r} is {column.type}, not numeric; a table "
                "example is one numeric [rows, features] input"
            )
    if table.num_rows == 0 or table.num_columns == 0:
        raise ValidationError(f"--input-example: {path}: holds no rows")
    return {TABLE_INPUT: np.column_stack([column.to_numpy() for column in table.columns])}
