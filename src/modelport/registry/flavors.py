"""Work out what a model file or folder is: its flavor, framework version and signature.

Registering a model must never run it. Pickles execute arbitrary code when loaded, and the
frameworks that read the other formats are optional extras that may be missing (or be the wrong
version) on the machine that registers. So every format is read as data: ONNX through its
protobuf schema, pickles by replaying their opcodes on inert placeholders (nothing is imported
or called), archives by listing their members, text and JSON models by their first and last
bytes, Python entry scripts with :mod:`ast`. Versions and signatures are reported only when the
model itself records them; nothing is guessed from the packages installed here.

Every result carries ``details["format"]`` when the bytes were recognised (``onnx``, ``pickle``,
``joblib``, ``xgboost-json``, ``xgboost-ubj``, ``lightgbm-text``, ``torch-zip``, ``mlflow``,
``triton``, ``python``). An explicit flavor is checked against it: a pickle can be loaded by
several frameworks, an ONNX graph only by ``onnx``; unrecognised bytes fit any flavor except the
self-describing ones (``onnx``, ``mlflow``, ``triton``, ``python``), which are verified.
"""

from __future__ import annotations

import ast
import bz2
import io
import json
import lzma
import math
import pickletools
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np
import yaml

from modelport.core.errors import ValidationError

FLAVORS: tuple[str, ...] = (
    "onnx", "sklearn", "torch", "xgboost", "lightgbm", "mlflow", "python", "triton", "custom",
)
# Open Inference Protocol (KServe v2 / Triton) tensor datatypes.
DATATYPES: tuple[str, ...] = (
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BF16", "BYTES",
)


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output, described as the Open Inference Protocol (v2) does."""

    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 marks a variable dimension

    def to_dict(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict, where: str = "tensor") -> TensorSpec:
        """Rebuild from :meth:`to_dict`; ``where`` names the field in error messages."""
        if not isinstance(d, dict):
            raise ValidationError(f"{where}: expected an object with name, datatype and shape")
        name, datatype, shape = d.get("name"), d.get("datatype"), d.get("shape")
        if not isinstance(name, str) or not name:
            raise ValidationError(f"{where}.name: must be a non-empty string")
        if datatype not in DATATYPES:
            raise ValidationError(
                f"{where}.datatype: {datatype!r} is not one of {', '.join(DATATYPES)}"
            )
        if not _is_shape(shape):
            raise ValidationError(f"{where}.shape: must be a list of integers >= -1")
        return cls(name, datatype, tuple(shape))


@dataclass(frozen=True)
class Signature:
    """What a model takes and returns, so servers can describe and check requests."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_dict(self) -> dict:
        return {
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [spec.to_dict() for spec in self.outputs],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Signature:
        """Rebuild from :meth:`to_dict`; a missing side means the model declares none."""
        if not isinstance(d, dict):
            raise ValidationError("signature: expected an object with inputs and outputs")
        sides = []
        for side in ("inputs", "outputs"):
            items = d.get(side, [])
            if not isinstance(items, list):
                raise ValidationError(f"signature.{side}: must be a list")
            sides.append(tuple(
                TensorSpec.from_dict(item, f"signature.{side}[{i}]") for i, item in enumerate(items)
            ))
        return cls(*sides)


@dataclass(frozen=True)
class FlavorInfo:
    """What :func:`detect` learnt: everything in it is JSON-safe and came from the model's bytes."""

    flavor: str
    framework_version: str | None
    signature: Signature | None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "flavor": self.flavor,
            "framework_version": self.framework_version,
            "signature": self.signature.to_dict() if self.signature else None,
            "details": self.details,
        }


def detect(path: Path | str, flavor: str | None = None) -> FlavorInfo:
    """Say what the model at ``path`` is, reading it as data only.

    ``flavor`` overrides detection, but must fit the content: an explicit flavor that the
    recognised format cannot be loaded by (``onnx`` for a pickle, ``sklearn`` for an ONNX graph,
    ``mlflow`` for a folder without ``MLmodel``) is a :class:`ValidationError` naming the path.
    Metadata is kept when the explicit flavor is the detected one; when it differs but still
    fits (``xgboost`` for a pickled sklearn pipeline), the signature and details are kept and
    ``details["detected_flavor"]`` says what detection found.
    """
    if flavor is not None and flavor not in FLAVORS:
        raise ValidationError(f"flavor: {flavor!r} is not one of {', '.join(FLAVORS)}")
    path = Path(path)
    try:
        if path.is_dir():
            return _detect_folder(path, flavor)
        if path.is_file():
            info = _onnx_model(path) if flavor == "onnx" else _sniff(path, strict=flavor is None)
            return _adopt(info, flavor, path)
    except OSError as exc:
        where = exc.filename or path
        raise ValidationError(f"{where}: cannot be read ({exc.strerror or exc})") from exc
    if path.exists():
        raise ValidationError(f"{path}: is neither a regular file nor a folder")
    raise ValidationError(f"{path}: no such file or folder")


# --- explicit flavors ----------------------------------------------------------------------

_PICKLE_LOADERS = frozenset({"sklearn", "xgboost", "lightgbm", "torch"})
# Which flavors can load each recognised format ("custom" can load anything).
_LOADERS: dict[str, frozenset[str]] = {
    "onnx": frozenset({"onnx"}),
    "pickle": _PICKLE_LOADERS,
    "joblib": _PICKLE_LOADERS,
    "xgboost-json": frozenset({"xgboost"}),
    "xgboost-ubj": frozenset({"xgboost"}),
    "lightgbm-text": frozenset({"lightgbm"}),
    "torch-zip": frozenset({"torch"}),
    "mlflow": frozenset({"mlflow"}),
    "triton": frozenset({"triton"}),
    "python": frozenset({"python"}),
}
# Flavors whose format identifies itself, so unrecognised content cannot be one of them.
_NEEDS = {
    "onnx": "is not an ONNX model",
    "mlflow": "is not an MLflow model folder (no MLmodel file)",
    "triton": "is not a Triton model repository (no <model>/<version>/ folders)",
    "python": "has no entry script (score.py, or a .py file defining init() and run())",
}


def _accepts(info: FlavorInfo, wanted: str) -> bool:
    """Whether flavor ``wanted`` could load what ``info`` describes."""
    if wanted == "custom":
        return True
    fmt = info.details.get("format")
    return wanted not in _NEEDS if fmt is None else wanted in _LOADERS[fmt]


def _adopt(info: FlavorInfo, wanted: str | None, path: Path) -> FlavorInfo:
    """Apply an explicit flavor to a detection, or refuse when it cannot fit."""
    if wanted is None or wanted == info.flavor:
        return info
    if not _accepts(info, wanted):
        raise _misfit(path, wanted, info)
    # The detected framework's version says nothing about the wanted one, so it is dropped.
    details = {**info.details, "detected_flavor": info.flavor}
    return FlavorInfo(wanted, None, info.signature, details)


def _misfit(path: Path, wanted: str, found: FlavorInfo | None) -> ValidationError:
    fmt = found.details.get("format") if found else None
    if fmt is not None:
        return ValidationError(
            f"{path}: detected as {found.flavor} ({fmt}), which flavor {wanted!r} cannot load"
        )
    return ValidationError(f"{path}: {_NEEDS[wanted]}, so flavor {wanted!r} does not fit")


# --- folders -------------------------------------------------------------------------------


def _detect_folder(folder: Path, wanted: str | None) -> FlavorInfo:
    """Folder layouts first (MLflow, Triton, entry script), then the one model file inside."""
    rejected: list[FlavorInfo] = []
    for probe in (_mlflow_model, _triton_repository, _python_folder):
        info = probe(folder)
        if info is not None and (wanted is None or _accepts(info, wanted)):
            return _adopt(info, wanted, folder)
        if info is not None:
            rejected.append(info)

    models = _model_files(folder, strict=wanted is None)
    fitting = [(name, info) for name, info in models if wanted is None or _accepts(info, wanted)]
    # A recognised framework beats a bare pickle (labels.pkl beside model.onnx).
    chosen = [(name, info) for name, info in fitting if info.flavor != "custom"] or fitting
    if len(chosen) == 1:
        name, info = chosen[0]
        return _adopt(replace(info, details={**info.details, "model_file": name}), wanted, folder)
    if chosen:  # several candidates: nothing tells which one is the model
        return FlavorInfo(wanted or "custom", None, None, {"model_files": [n for n, _ in chosen]})
    if wanted is None:
        return FlavorInfo("custom", None, None, {})
    rejected.extend(info for _, info in models)
    if rejected or wanted in _NEEDS:
        raise _misfit(folder, wanted, rejected[0] if rejected else None)
    return FlavorInfo(wanted, None, None, {})


def _model_files(folder: Path, strict: bool) -> list[tuple[str, FlavorInfo]]:
    """Top-level files whose content is a recognised model format, by name.

    Content decides, not the name, so README.md, config.yaml or requirements.txt never count,
    while an XGBoost ``model.json`` or a LightGBM ``model.txt`` does. Python files are left to
    the entry-script rule.
    """
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.suffix == ".py" or not entry.is_file():
            continue
        info = _sniff(entry, strict)
        if "format" in info.details:
            found.append((entry.name, info))
    return found


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_triton_model(folder: Path) -> bool:
    """A Triton model folder holds numbered version folders (and usually config.pbtxt)."""
    subfolders = _subfolders(folder)
    versions = [p for p in subfolders if p.name.isascii() and p.name.isdigit()]
    return bool(versions) and (
        (folder / "config.pbtxt").is_file() or len(versions) == len(subfolders)
    )


def _triton_repository(folder: Path) -> FlavorInfo | None:
    if _is_triton_model(folder):
        models = [folder.resolve().name]
    else:
        subfolders = _subfolders(folder)
        if not subfolders or not all(_is_triton_model(p) for p in subfolders):
            return None
        models = [p.name for p in subfolders]
    return FlavorInfo("triton", None, None, {"format": "triton", "models": models})


def _python_folder(folder: Path) -> FlavorInfo | None:
    if (folder / "score.py").is_file():
        script = "score.py"
    else:
        scripts = (p for p in sorted(folder.glob("*.py")) if not p.name.startswith("."))
        script = next((p.name for p in scripts if p.is_file() and _defines_init_and_run(p)), None)
    return _python_info(script) if script else None


def _python_file(path: Path) -> FlavorInfo | None:
    return _python_info(path.name) if path.suffix == ".py" and _defines_init_and_run(path) else None


def _python_info(script: str) -> FlavorInfo:
    return FlavorInfo("python", None, None, {"format": "python", "entry_script": script})


def _defines_init_and_run(path: Path) -> bool:
    """Whether a script defines top-level ``init`` and ``run``: parsed, never imported."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return False
    defined = {
        node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    return {"init", "run"} <= defined


# --- MLflow --------------------------------------------------------------------------------

_MLFLOW_COLUMN_TYPES = {
    "boolean": "BOOL",
    "integer": "INT32",
    "long": "INT64",
    "float": "FP32",
    "double": "FP64",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",  # travels as ISO-8601 text
}


def _mlflow_model(folder: Path) -> FlavorInfo | None:
    mlmodel = folder / "MLmodel"
    if not mlmodel.is_file():
        return None
    try:
        doc = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{mlmodel}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise ValidationError(f"{mlmodel}: expected a YAML mapping at the top level")
    flavors = doc.get("flavors")
    details: dict = {
        "format": "mlflow",
        "flavors": _json_safe(flavors) if isinstance(flavors, dict) else {},
    }
    unsupported: dict[str, str] = {}
    signature = None
    if isinstance(doc.get("signature"), dict):
        sig = doc["signature"]
        signature = Signature(
            _mlflow_specs(sig.get("inputs"), "input", mlmodel, unsupported),
            _mlflow_specs(sig.get("outputs"), "output", mlmodel, unsupported),
        )
    if unsupported:
        details["unsupported_io"] = unsupported
    return FlavorInfo("mlflow", _version_text(doc.get("mlflow_version")), signature, details)


def _mlflow_specs(
    raw: Any, kind: str, mlmodel: Path, unsupported: dict[str, str]
) -> tuple[TensorSpec, ...]:
    """Read one side of an MLflow signature: a JSON string (as MLflow writes it) or a list."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"{mlmodel}: signature.{kind}s is not valid JSON ({exc})"
            ) from exc
    if not isinstance(raw, list):
        raise ValidationError(f"{mlmodel}: signature.{kind}s must be a list of columns or tensors")
    specs = []
    for i, item in enumerate(raw):
        item = item if isinstance(item, dict) else {}
        name = item.get("name")
        name = name if isinstance(name, str) and name else f"{kind}-{i}"
        spec = _mlflow_spec(item, name)
        if spec is None:
            unsupported[name] = str(item.get("type"))
        else:
            specs.append(spec)
    return tuple(specs)


def _mlflow_spec(item: dict, name: str) -> TensorSpec | None:
    if item.get("type") != "tensor":  # column-based: one value per row
        datatype = _MLFLOW_COLUMN_TYPES.get(item.get("type"))
        return TensorSpec(name, datatype, (-1,)) if datatype else None
    tensor = item.get("tensor-spec")
    tensor = tensor if isinstance(tensor, dict) else {}
    datatype, shape = _numpy_datatype(tensor.get("dtype")), tensor.get("shape")
    return TensorSpec(name, datatype, tuple(shape)) if datatype and _is_shape(shape) else None


def _numpy_datatype(name: Any) -> str | None:
    """The v2 datatype of a numpy dtype name as MLflow writes it ("float32", "object", "<U0")."""
    if not isinstance(name, str):
        return None
    try:
        dtype = np.dtype(name)
    except (TypeError, ValueError):
        return None
    bits = dtype.itemsize * 8
    datatype = {
        "b": "BOOL", "i": f"INT{bits}", "u": f"UINT{bits}", "f": f"FP{bits}",
        "O": "BYTES", "U": "BYTES", "S": "BYTES",
    }.get(dtype.kind)
    return datatype if datatype in DATATYPES else None


def _version_text(value: Any) -> str | None:
    """A version the model recorded, if it reads as one: short printable text.

    Files can hold anything there; the registry stores at most 128 characters.
    """
    text = "" if value is None else str(value).strip()
    return text if 0 < len(text) <= 64 and text.isprintable() else None


def _is_shape(shape: Any) -> bool:
    return isinstance(shape, (list, tuple)) and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= -1 for n in shape
    )


def _json_safe(value: Any) -> Any:
    """YAML can hold dates and non-finite floats; details must survive ``json.dumps``."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return str(value)


# --- single files --------------------------------------------------------------------------

_HEAD_BYTES = 256
_TAIL_BYTES = 256


def _sniff(path: Path, strict: bool) -> FlavorInfo:
    """Recognise one file by its content (and, for ONNX and bare pickles, its extension).

    A ``.onnx`` file that does not parse is an error when ``strict`` (detection would otherwise
    trust the name); under an explicit flavor it is just unrecognised bytes.
    """
    if path.suffix.lower() == ".onnx":
        try:
            return _onnx_model(path)
        except ValidationError:
            if strict:
                raise
    with path.open("rb") as f:
        head = f.read(_HEAD_BYTES)
    return (
        _torch_archive(path, head)
        or _pickled_model(path, head)
        or _xgboost_model(path, head)
        or _lightgbm_model(path, head)
        or _python_file(path)
        or FlavorInfo("custom", None, None, {})
    )


# --- ONNX ----------------------------------------------------------------------------------

_ONNX_DATATYPES = {
    "BOOL": "BOOL", "UINT8": "UINT8", "UINT16": "UINT16", "UINT32": "UINT32", "UINT64": "UINT64",
    "INT8": "INT8", "INT16": "INT16", "INT32": "INT32", "INT64": "INT64",
    "FLOAT16": "FP16", "FLOAT": "FP32", "DOUBLE": "FP64", "BFLOAT16": "BF16", "STRING": "BYTES",
}


def _onnx_model(path: Path) -> FlavorInfo:
    """Parse the graph's protobuf (weights stored outside the file are not read).

    ``framework_version`` is the producer's version (e.g. the PyTorch or skl2onnx release that
    exported it), the framework that made the file; IR version and opsets, which decide the
    runtime that can run it, are in ``details``.
    """
    import onnx  # protobuf bindings are slow to import; only ONNX files need them
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(path, load_external_data=False)
    except (DecodeError, ValueError) as exc:
        raise ValidationError(f"{path}: not a valid ONNX model ({exc})") from exc
    if not model.ir_version or not model.HasField("graph"):
        raise ValidationError(f"{path}: not a valid ONNX model (no IR version or no graph)")
    graph = model.graph
    elem_names = {number: name for name, number in onnx.TensorProto.DataType.items()}
    initialized = {tensor.name for tensor in graph.initializer}
    unsupported: dict[str, str] = {}
    graph_inputs = (v for v in graph.input if v.name not in initialized)  # IR < 4 lists weights
    inputs = _onnx_specs(graph_inputs, elem_names, unsupported)
    outputs = _onnx_specs(graph.output, elem_names, unsupported)
    details: dict = {
        "format": "onnx",
        "ir_version": model.ir_version,
        "opset": {imp.domain or "ai.onnx": imp.version for imp in model.opset_import},
        "producer_name": model.producer_name or None,
        "producer_version": model.producer_version or None,
        "external_data": any(
            t.data_location == onnx.TensorProto.EXTERNAL for t in graph.initializer
        ),
    }
    if unsupported:
        details["unsupported_io"] = unsupported
    version = _version_text(model.producer_version)
    return FlavorInfo("onnx", version, Signature(inputs, outputs), details)


def _onnx_specs(
    values: Iterable[Any], elem_names: dict[int, str], unsupported: dict[str, str]
) -> tuple[TensorSpec, ...]:
    """Tensors with a v2 datatype and a known rank; the rest (maps, sequences...) are noted."""
    specs = []
    for value in values:
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            unsupported[value.name] = str(kind).removesuffix("_type")  # sequence, map, optional
            continue
        tensor = value.type.tensor_type
        elem = elem_names.get(tensor.elem_type, "UNDEFINED")
        datatype = _ONNX_DATATYPES.get(elem)
        if datatype is None or not tensor.HasField("shape"):
            rank = "" if tensor.HasField("shape") else " of unknown rank"
            unsupported[value.name] = f"tensor({elem.lower()}){rank}"
            continue
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        specs.append(TensorSpec(value.name, datatype, shape))
    return tuple(specs)


# --- PyTorch -------------------------------------------------------------------------------

# What zipfile raises on a damaged archive (bad names decode to UnicodeDecodeError, a ValueError).
_BAD_ZIP = (zipfile.BadZipFile, ValueError, EOFError, NotImplementedError, OSError, zlib.error)


def _torch_archive(path: Path, head: bytes) -> FlavorInfo | None:
    """torch.save and TorchScript write zip archives: ``<name>/data.pkl`` plus tensor records."""
    if not head.startswith(b"PK\x03\x04"):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            prefixes = {
                n.removesuffix("data.pkl") for n in names
                if n.endswith("/data.pkl") and n.count("/") == 1
            }
            if len(prefixes) != 1:
                return None
            prefix = prefixes.pop()
            details: dict = {
                "format": "torch-zip",
                "torchscript": f"{prefix}constants.pkl" in names
                and any(n.startswith(f"{prefix}code/") for n in names),
            }
            # The archive's serialization format version; torch itself records no release.
            records = (f"{prefix}.data/version", f"{prefix}version")
            record = next((r for r in records if r in names), None)
            if record is not None:
                with archive.open(record) as f:
                    details["format_version"] = f.read(32).decode("ascii", "replace").strip()
    except _BAD_ZIP:
        return None  # a damaged archive of any kind: nothing to say about it
    return FlavorInfo("torch", None, None, details)


# --- XGBoost and LightGBM native formats ---------------------------------------------------

# XGBoost writes {"learner": {...}, "version": [major, minor, patch]}: the key order is its own,
# so the head and the tail are enough and a model of any size is never parsed whole.
_XGB_JSON_HEAD = re.compile(rb'\s*\{\s*"learner"\s*:')
_XGB_JSON_TAIL = re.compile(
    rb'"version"\s*:\s*\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]\s*\}\s*$'
)
_UBJ_INTS = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q"}


def _xgboost_model(path: Path, head: bytes) -> FlavorInfo | None:
    if _XGB_JSON_HEAD.match(head):
        fmt = "xgboost-json"
    elif head[:1] == b"{" and head[1:2] in _UBJ_INTS and b"learner" in head[:32]:
        fmt = "xgboost-ubj"
    else:
        return None
    tail = _tail(path)
    if fmt == "xgboost-json":
        match = _XGB_JSON_TAIL.search(tail)
        version = ".".join(part.decode() for part in match.groups()) if match else None
    else:
        version = _ubj_version(tail)
    return FlavorInfo("xgboost", version, None, {"format": fmt})


def _tail(path: Path) -> bytes:
    with path.open("rb") as f:
        f.seek(max(0, f.seek(0, io.SEEK_END) - _TAIL_BYTES))
        return f.read()


def _ubj_version(tail: bytes) -> str | None:
    """Read the ``version`` int array that closes XGBoost's UBJSON document."""
    at = tail.rfind(b"version[")
    if at < 0:
        return None
    buf = io.BytesIO(tail[at + len(b"version[") :])
    try:
        item_type = count = None
        marker = buf.read(1)
        if marker == b"$":
            item_type, marker = buf.read(1), buf.read(1)
        if marker == b"#":
            count, marker = _ubj_int(buf, buf.read(1)), None
        parts: list[int] = []
        while count is None or len(parts) < count:  # a counted array has no closing "]"
            marker = item_type or marker or buf.read(1)
            if count is None and marker == b"]":
                break
            parts.append(_ubj_int(buf, marker))
            marker = None
    except (KeyError, struct.error):
        return None
    return ".".join(map(str, parts)) if parts and buf.read(1) == b"}" else None


def _ubj_int(buf: IO[bytes], marker: bytes) -> int:
    fmt = _UBJ_INTS[marker]
    return struct.unpack(fmt, buf.read(struct.calcsize(fmt)))[0]


_LIGHTGBM_HEAD = re.compile(rb"tree\r?\n")
_LIGHTGBM_KEYS = ("version", "num_class", "max_feature_idx", "objective")


def _lightgbm_model(path: Path, head: bytes) -> FlavorInfo | None:
    """LightGBM's text model: ``tree``, then ``key=value`` header lines before the trees."""
    if not _LIGHTGBM_HEAD.match(head):
        return None
    header: dict[str, str] = {}
    with path.open("rb") as f:
        f.readline()
        for _ in range(64):
            key, sep, value = f.readline(1 << 20).decode("utf-8", "replace").strip().partition("=")
            if not sep or key.startswith("Tree"):
                break
            if key in _LIGHTGBM_KEYS:
                header[key] = value
            if len(header) == len(_LIGHTGBM_KEYS):
                break
    if not re.fullmatch(r"v\d+", header.get("version", "")):
        return None
    details: dict = {"format": "lightgbm-text", "format_version": header["version"]}
    if header.get("num_class", "").isdigit():
        details["num_class"] = int(header["num_class"])
    if header.get("max_feature_idx", "").isdigit():
        details["num_features"] = int(header["max_feature_idx"]) + 1
    if header.get("objective"):
        details["objective"] = header["objective"]
    return FlavorInfo("lightgbm", None, None, details)


# --- pickles and joblib --------------------------------------------------------------------

_PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib"})
_PICKLE_HEADER = re.compile(rb"\x80[\x02-\x05]")  # PROTO opcode, protocols 2 to 5
# joblib's compress= methods, by magic bytes. zlib's two-byte header is checked by checksum.
_COMPRESSION_MAGIC = (
    (b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"), (b"\x04\x22\x4d\x18", "lz4"),
)
_PICKLE_FRAMEWORKS = frozenset({"sklearn", "xgboost", "lightgbm", "torch"})
_CHUNK = 1 << 20
_MAX_LINE = 16 << 20
_MAX_TEXT = 4096


def _compression(head: bytes) -> str | None:
    if head[:1] == b"\x78" and int.from_bytes(head[:2], "big") % 31 == 0:
        return "zlib"
    return next((name for magic, name in _COMPRESSION_MAGIC if head.startswith(magic)), None)


def _pickled_model(path: Path, head: bytes) -> FlavorInfo | None:
    """Pickles and joblib files, compressed or not, recognised without unpickling.

    Protocol 2+ pickles announce themselves; protocol 0/1 pickles are taken on their extension.
    Compressed streams are inflated as they are read. lz4 (joblib's only non-stdlib codec)
    cannot be, so such a file is reported as an uninspected joblib file.
    """
    compression = _compression(head)
    named_pickle = path.suffix.lower() in _PICKLE_SUFFIXES
    if compression == "lz4":
        if not named_pickle:
            return None
        return FlavorInfo("custom", None, None, {
            "format": "joblib", "compression": "lz4",
            "note": "lz4-compressed: contents not inspected",
        })
    if compression is None and not (named_pickle or _PICKLE_HEADER.match(head)):
        return None
    with _open_stream(path, compression) as stream:
        if compression is not None and not named_pickle and not _PICKLE_HEADER.match(_peek(stream)):
            return None
        facts = _scan_pickle(stream)
    if not (facts.saw_global or facts.complete):
        return None
    joblib = facts.joblib or compression is not None or path.suffix.lower() == ".joblib"
    details: dict = {"format": "joblib" if joblib else "pickle"}
    if compression is not None:
        details["compression"] = compression
    if facts.estimator is not None:
        details["estimator"] = facts.estimator
    flavor = facts.framework or "custom"
    version = _version_text(facts.sklearn_version) if flavor == "sklearn" else None
    return FlavorInfo(flavor, version, None, details)


def _open_stream(path: Path, compression: str | None) -> IO[bytes]:
    if compression == "bz2":
        return bz2.open(path, "rb")
    if compression in ("xz", "lzma"):
        return lzma.open(path, "rb")
    raw = path.open("rb")
    return io.BufferedReader(_Inflater(raw)) if compression else raw


def _peek(stream: IO[bytes]) -> bytes:
    try:
        return stream.peek(2)[:2]
    except _UNREADABLE:
        return b""


class _Inflater(io.RawIOBase):
    """A zlib or gzip stream, inflated as it is read, never more than the reader asks for."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)  # either header

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._inflate.eof:
            data = self._inflate.unconsumed_tail or self._raw.read(_CHUNK)
            if not data:
                break  # truncated: the pickle walk stops where the bytes do
            out = self._inflate.decompress(data, len(view))
            if out:
                view[: len(out)] = out
                return len(out)
        return 0

    def close(self) -> None:
        self._raw.close()
        super().close()


# What a damaged or hostile stream can raise while being walked: the walk stops, findings stay.
_UNREADABLE = (
    ValueError, IndexError, KeyError, TypeError, EOFError, OSError, RecursionError,
    struct.error, zlib.error, lzma.LZMAError,
)


@dataclass
class _PickleFacts:
    framework: str | None = None  # top-level package of the first framework class referenced
    estimator: str | None = None  # "module.Class" of the model object
    sklearn_version: str | None = None
    joblib: bool = False
    saw_global: bool = False
    complete: bool = False  # reached STOP


class _Enough(Exception):
    """Everything worth knowing is known: stop reading."""


def _scan_pickle(stream: IO[bytes]) -> _PickleFacts:
    """Walk a pickle up to STOP, or until flavor, estimator and version are known."""
    facts = _PickleFacts()
    try:
        _PickleWalker(_ChunkedReader(stream), facts).run()
        facts.complete = True
    except _Enough:
        pass
    except _UNREADABLE:
        pass  # truncated, corrupt or not a pickle after all: keep what was found
    return facts


class _ChunkedReader:
    """The stream as genops sees it: memory follows the bytes that exist, not declared lengths.

    Pickle opcodes announce their argument's length and io's ``read(n)`` allocates ``n`` bytes
    up front, so one damaged length field would ask for exabytes. Lines (protocol 0 arguments)
    are capped for the same reason; a longer one ends the walk. It has no ``tell``, which spares
    genops a system call per opcode.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def read(self, size: int) -> bytes:
        if size <= _CHUNK:
            return self._stream.read(size)
        chunks = []
        while size > 0:
            chunk = self._stream.read(min(size, _CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def readline(self) -> bytes:
        return self._stream.readline(_MAX_LINE)

    def seekable(self) -> bool:
        return self._stream.seekable()

    def seek(self, offset: int, whence: int) -> int:
        return self._stream.seek(offset, whence)


class _Global(NamedTuple):
    module: str
    name: str


@dataclass(eq=False)
class _Call:
    """Stands for whatever ``func(*args)`` would have built; ``state`` is what BUILD gave it."""

    func: Any
    args: Any
    state: Any = None


_OPAQUE = object()  # bytes, buffers, extension codes, persistent ids: never needed
_LITERAL_OPS = frozenset({
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE",
    "BINUNICODE8",
})
_OPAQUE_OPS = frozenset({
    "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "NEXT_BUFFER",
    "EXT1", "EXT2", "EXT4", "PERSID",
})
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_JOBLIB_ARRAY = _Global("joblib.numpy_pickle", "NumpyArrayWrapper")


class _PickleWalker:
    """Replays pickle opcodes on a stack of inert values.

    Strings, numbers, tuples, lists and dicts are rebuilt (they carry the class names and
    ``_sklearn_version``); classes become :class:`_Global` names and every call a
    :class:`_Call` record. Nothing is imported, called or looked up, so a hostile pickle is just
    bytes here. joblib's in-line array data, which is not pickle, is stepped over.
    """

    def __init__(self, stream: IO[bytes], facts: _PickleFacts) -> None:
        self._stream = stream
        self._facts = facts
        self._stack: list[Any] = []
        self._marks: list[list[Any]] = []
        self._memo: dict[int, Any] = {}

    def run(self) -> None:
        for opcode, arg, _ in pickletools.genops(self._stream):
            self._step(opcode.name, arg)

    def _step(self, name: str, arg: Any) -> None:
        if name in _LITERAL_OPS:  # long texts (embedded data) are never names or versions
            too_long = isinstance(arg, str) and len(arg) > _MAX_TEXT
            self._stack.append(_OPAQUE if too_long else arg)
        elif name in _OPAQUE_OPS:
            self._stack.append(_OPAQUE)
        elif name in _CONSTANTS:
            self._stack.append(_CONSTANTS[name])
        else:
            match name:  # most frequent first: cases are tried in order
                case "MEMOIZE":
                    self._memo[len(self._memo)] = self._stack[-1]
                case "GET" | "BINGET" | "LONG_BINGET":
                    self._stack.append(self._memo[arg])
                case "MARK":
                    self._marks.append(self._stack)
                    self._stack = []
                case "EMPTY_DICT":
                    self._stack.append({})
                case "SETITEMS":
                    items = self._pop_mark()
                    self._set_items(self._stack[-1], items)
                case "SETITEM":
                    value = self._stack.pop()
                    key = self._stack.pop()
                    self._set_items(self._stack[-1], [key, value])
                case "EMPTY_LIST" | "EMPTY_SET":
                    self._stack.append([])
                case "APPENDS" | "ADDITEMS":
                    items = self._pop_mark()
                    self._extend(self._stack[-1], items)
                case "APPEND":
                    value = self._stack.pop()
                    self._extend(self._stack[-1], [value])
                case "TUPLE1" | "TUPLE2" | "TUPLE3":
                    size = int(name[-1])
                    items = tuple(self._stack[-size:])
                    if len(items) != size:
                        raise IndexError("stack underflow")
                    del self._stack[-size:]
                    self._stack.append(items)
                case "EMPTY_TUPLE":
                    self._stack.append(())
                case "BUILD":
                    state = self._stack.pop()
                    self._build(self._stack[-1], state)
                case "REDUCE" | "NEWOBJ":
                    args = self._stack.pop()
                    self._stack.append(_Call(self._stack.pop(), args))
                case "STACK_GLOBAL":
                    qualname = self._stack.pop()
                    module = self._stack.pop()
                    self._stack.append(self._global(module, qualname))
                case "PUT" | "BINPUT" | "LONG_BINPUT":
                    self._memo[arg] = self._stack[-1]
                case "TUPLE" | "FROZENSET":
                    items = tuple(self._pop_mark())
                    self._stack.append(items)
                case "LIST":
                    items = self._pop_mark()
                    self._stack.append(items)
                case "DICT":
                    items = self._pop_mark()
                    self._stack.append(self._set_items({}, items))
                case "GLOBAL":
                    self._stack.append(self._global(*arg.split(" ", 1)))
                case "INST":
                    cls = self._global(*arg.split(" ", 1))
                    args = tuple(self._pop_mark())
                    self._stack.append(_Call(cls, args))
                case "OBJ":
                    cls, *args = self._pop_mark()
                    self._stack.append(_Call(cls, tuple(args)))
                case "NEWOBJ_EX":
                    self._stack.pop()  # keyword arguments
                    args = self._stack.pop()
                    self._stack.append(_Call(self._stack.pop(), args))
                case "BINPERSID":
                    self._stack[-1] = _OPAQUE
                case "POP":
                    if self._stack:
                        self._stack.pop()
                    else:
                        self._pop_mark()
                case "POP_MARK":
                    self._pop_mark()
                case "DUP":
                    self._stack.append(self._stack[-1])
                case "PROTO" | "FRAME" | "READONLY_BUFFER" | "STOP":
                    pass
                case _:
                    raise ValueError(f"unknown opcode {name}")

    def _pop_mark(self) -> list[Any]:
        """Return the items above the last MARK; callers must not hold ``self._stack`` across it."""
        items = self._stack
        self._stack = self._marks.pop()
        return items

    @staticmethod
    def _extend(target: Any, items: list[Any]) -> None:
        if isinstance(target, list):
            target.extend(items)

    def _set_items(self, target: Any, flat: list[Any]) -> Any:
        for key, value in zip(flat[::2], flat[1::2]):
            # sklearn's BaseEstimator.__getstate__ adds this to every estimator's state.
            found = key == "_sklearn_version" and isinstance(value, str)
            if found and not self._facts.sklearn_version:
                self._facts.sklearn_version = value
                self._stop_if_done()
            if isinstance(target, dict):
                target[key] = value
        return target

    def _global(self, module: Any, qualname: Any) -> _Global:
        if not isinstance(module, str) or not isinstance(qualname, str):
            raise ValueError("class reference is not a pair of names")
        facts = self._facts
        facts.saw_global = True
        top = module.partition(".")[0]
        facts.joblib = facts.joblib or top == "joblib"
        if top in _PICKLE_FRAMEWORKS:
            facts.framework = facts.framework or top
            helper = _is_helper(module, qualname)
            if facts.estimator is None and top == facts.framework and not helper:
                facts.estimator = f"{module}.{qualname}"
            self._stop_if_done()
        return _Global(module, qualname)

    def _stop_if_done(self) -> None:
        facts = self._facts
        if facts.estimator and (facts.framework != "sklearn" or facts.sklearn_version):
            raise _Enough

    def _build(self, target: Any, state: Any) -> None:
        if isinstance(target, _Call):
            target.state = state
            if target.func == _JOBLIB_ARRAY:
                self._skip_joblib_array(state)

    def _skip_joblib_array(self, state: Any) -> None:
        """joblib writes an array's bytes right after its wrapper, outside the pickle format."""
        shape = state.get("shape") if isinstance(state, dict) else None
        if not isinstance(shape, tuple) or not _is_shape(shape) or -1 in shape:
            raise ValueError("joblib array wrapper without a shape")
        itemsize, has_objects = _dtype_layout(state.get("dtype"))
        if has_objects:  # written as a nested pickle instead
            _PickleWalker(self._stream, self._facts).run()
            return
        if state.get("numpy_array_alignment_bytes") is not None:
            _skip(self._stream, self._stream.read(1)[0])  # one byte giving the padding length
        _skip(self._stream, math.prod(shape) * itemsize)


def _is_helper(module: str, qualname: str) -> bool:
    """Framework classes and functions that are parts of a model rather than the model."""
    subpackage = module.partition(".")[2]
    return qualname.startswith("_") or subpackage.startswith(("_", "utils"))


def _dtype_layout(dtype: Any) -> tuple[int, bool]:
    """Item size and whether it holds objects, from ``numpy.dtype``'s pickled arguments/state.

    numpy pickles a dtype as ``dtype("f8", False, True)`` plus a state tuple whose 6th item is
    the item size for flexible types (-1 otherwise) and whose 8th holds the flags, bit 0 meaning
    "contains Python objects".
    """
    if not (
        isinstance(dtype, _Call)
        and isinstance(dtype.func, _Global) and dtype.func.module.startswith("numpy")
        and isinstance(dtype.args, tuple) and dtype.args and isinstance(dtype.args[0], str)
        and isinstance(dtype.state, tuple) and len(dtype.state) >= 8
        and isinstance(dtype.state[5], int) and isinstance(dtype.state[7], int)
    ):
        raise ValueError("joblib array wrapper without a numpy dtype")
    code = re.fullmatch(r"[A-Za-z]+(\d+)", dtype.args[0])
    itemsize = dtype.state[5] if dtype.state[5] > 0 else int(code.group(1)) if code else None
    if itemsize is None:
        raise ValueError(f"unknown numpy dtype {dtype.args[0]!r}")
    return itemsize, bool(dtype.state[7] & 1)


def _skip(stream: IO[bytes], size: int) -> None:
    if stream.seekable():
        stream.seek(size, io.SEEK_CUR)
        return
    while size > 0:
        chunk = stream.read(min(size, _CHUNK))
        if not chunk:
            raise EOFError("stream ends inside an array")
        size -= len(chunk)
