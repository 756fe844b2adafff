"""A model's serving configuration: Triton's ``ModelConfig`` subset that modelport acts on.

One dataclass tree is read from either ``config.yaml`` or Triton's ``config.pbtxt`` (protobuf
text format, parsed here so that no protobuf schema has to ship), so that an existing Triton
model repository serves unchanged and a modelport-native folder can use YAML. Fields modelport
does not act on are kept in ``extra`` rather than rejected, because real Triton configs carry
many (``optimization``, ``model_warmup``...), and they come back out of :meth:`ModelConfig.to_dict`,
which renders the JSON that Triton's ``GET /v2/models/{m}/config`` returns.

Every config object validates itself on construction; the loaders prefix each message with the
file and the field path (``config.pbtxt: input[0].dims: ...``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from modelport.core.errors import ValidationError
from modelport.core.names import validate_name

if TYPE_CHECKING:
    from modelport.runtime.predictor import Predictor, TensorMeta

DATATYPES = (
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BF16", "BYTES",
)  # fmt: skip
# Triton's config enum names; TYPE_STRING is the one that does not follow the pattern.
_TRITON_DATATYPES = {f"TYPE_{name}": name for name in DATATYPES if name != "BYTES"}
_TRITON_DATATYPES["TYPE_STRING"] = "BYTES"
_CONFIG_DATATYPES = {v2: triton for triton, v2 in _TRITON_DATATYPES.items()}

# Triton's onnxruntime backend batches a config-less model whose every tensor starts with a
# variable dim up to this size (its --backend-config default-max-batch-size).
DEFAULT_MAX_BATCH_SIZE = 4

# Triton platform/backend names for the flavors that have a Triton counterpart.
_FLAVOR_PLATFORMS = {"onnx": ("onnxruntime_onnx", "onnxruntime"), "torch": ("pytorch_libtorch", "pytorch")}
_PLATFORM_FLAVORS = {"onnxruntime_onnx": "onnx", "pytorch_libtorch": "torch"}
_BACKEND_FLAVORS = {"onnxruntime": "onnx", "pytorch": "torch"}
# Triton's FIL backend serves tree models; its model_type parameter names the file format.
_FIL_FLAVORS = {"xgboost": "xgboost", "xgboost_json": "xgboost", "xgboost_ubj": "xgboost", "lightgbm": "lightgbm"}

_KINDS = {"KIND_CPU": "cpu", "KIND_GPU": "gpu", "KIND_AUTO": "cpu", "cpu": "cpu", "gpu": "gpu"}


def normalize_datatype(value: object) -> str:
    """Return the v2 name (``FP32``) for a v2 or Triton config name (``TYPE_FP32``)."""
    if isinstance(value, str):
        if value in DATATYPES:
            return value
        if value in _TRITON_DATATYPES:
            return _TRITON_DATATYPES[value]
    raise ValidationError(f"{value!r} is not a datatype; use one of {', '.join(DATATYPES)} (or TYPE_FP32 style)")


@dataclass(frozen=True)
class TensorConfig:
    """One input or output. ``dims`` exclude the batch dim when ``max_batch_size > 0``."""

    name: str
    datatype: str
    dims: tuple[int, ...]
    optional: bool = False
    label_filename: str | None = None  # outputs only: the classification labels of this output
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        with _at("name"):
            _text(self.name)
        with _at("data_type"):
            object.__setattr__(self, "datatype", normalize_datatype(self.datatype))
        with _at("dims"):
            object.__setattr__(self, "dims", _dims(self.dims))
        with _at("optional"):
            _bool(self.optional)
        if self.label_filename is not None:
            with _at("label_filename"):
                _text(self.label_filename)

    def to_dict(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "name": self.name,
            "data_type": _CONFIG_DATATYPES[self.datatype],
            "dims": list(self.dims),
        }
        if self.optional:
            rendered["optional"] = True
        if self.label_filename:
            rendered["label_filename"] = self.label_filename
        return {**rendered, **self.extra}


@dataclass(frozen=True)
class DynamicBatching:
    """Triton's ``dynamic_batching``; an empty ``preferred_batch_size`` means "as large as possible".

    ``max_queue_size`` and ``default_timeout_microseconds`` live in Triton's
    ``default_queue_policy``; 0 means "not set" (Triton: unbounded / no timeout).
    ``latency_budget_ms`` is modelport's own (not a Triton field): the latency a deployment
    promises, against which batching settings are tuned.
    """

    preferred_batch_size: tuple[int, ...] = ()
    max_queue_delay_microseconds: int = 0
    preserve_ordering: bool = False
    max_queue_size: int = 0
    default_timeout_microseconds: int = 0
    latency_budget_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        with _at("preferred_batch_size"):
            sizes = tuple(_int(size, minimum=1) for size in _sequence(self.preferred_batch_size))
            object.__setattr__(self, "preferred_batch_size", sizes)
        for name in ("max_queue_delay_microseconds", "max_queue_size", "default_timeout_microseconds"):
            with _at(name):
                object.__setattr__(self, name, _int(getattr(self, name), minimum=0))
        with _at("preserve_ordering"):
            _bool(self.preserve_ordering)
        if self.latency_budget_ms is not None:
            with _at("latency_budget_ms"):
                object.__setattr__(self, "latency_budget_ms", _positive_float(self.latency_budget_ms))

    def to_dict(self) -> dict[str, Any]:
        extra = dict(self.extra)
        policy = {
            "default_timeout_microseconds": self.default_timeout_microseconds,
            "max_queue_size": self.max_queue_size,
            **extra.pop("default_queue_policy", {}),
        }
        rendered: dict[str, Any] = {
            "preferred_batch_size": list(self.preferred_batch_size),
            "max_queue_delay_microseconds": self.max_queue_delay_microseconds,
            "preserve_ordering": self.preserve_ordering,
            "default_queue_policy": policy,
        }
        if self.latency_budget_ms is not None:
            rendered["latency_budget_ms"] = self.latency_budget_ms
        return {**rendered, **extra}


@dataclass(frozen=True)
class InstanceGroup:
    """How many copies of the model run, where, and with how many threads each.

    Triton's ``KIND_AUTO`` is read as ``cpu``: modelport only uses a GPU when told to.
    ``threads`` is modelport's own (Triton spreads it over backend parameters).
    """

    count: int = 1
    kind: Literal["cpu", "gpu"] = "cpu"
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        with _at("count"):
            object.__setattr__(self, "count", _int(self.count, minimum=1))
        with _at("kind"):
            if self.kind not in _KINDS:
                raise ValidationError(f"{self.kind!r} is not a kind; use KIND_CPU or KIND_GPU")
            object.__setattr__(self, "kind", _KINDS[self.kind])
        if self.threads is not None:
            with _at("threads"):
                object.__setattr__(self, "threads", _int(self.threads, minimum=1))

    def to_dict(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {"count": self.count, "kind": f"KIND_{self.kind.upper()}"}
        if self.threads is not None:
            rendered["threads"] = self.threads
        return {**rendered, **self.extra}


@dataclass(frozen=True)
class VersionPolicy:
    """Which numeric versions of a model are served: Triton's ``latest``/``all``/``specific``."""

    kind: Literal["latest", "all", "specific"] = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        with _at("kind"):
            if self.kind not in ("latest", "all", "specific"):
                raise ValidationError(f"{self.kind!r} is not a policy; use latest, all or specific")
        with _at("num_versions"):
            object.__setattr__(self, "num_versions", _int(self.num_versions, minimum=1))
        with _at("versions"):
            versions = tuple(_int(v, minimum=1) for v in _sequence(self.versions))
            if self.kind == "specific" and not versions:
                raise ValidationError("must list at least one version")
            object.__setattr__(self, "versions", versions)

    def select(self, available: Iterable[int]) -> list[int]:
        """The versions to serve out of those present, ascending."""
        versions = sorted(set(available))
        if self.kind == "all":
            return versions
        if self.kind == "latest":
            return versions[-self.num_versions:]
        return [version for version in versions if version in self.versions]

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "latest":
            return {"latest": {"num_versions": self.num_versions}}
        if self.kind == "all":
            return {"all": {}}
        return {"specific": {"versions": list(self.versions)}}


@dataclass(frozen=True)
class ModelConfig:
    """A model's serving configuration (Triton ``ModelConfig`` subset + modelport fields).

    ``flavor`` is modelport's loader name (``onnx``, ``sklearn``...); when absent it is derived
    from Triton's ``platform``/``backend``, and those are derived from it, so either style of
    config names the same thing. ``labels`` is the label file for classification outputs that
    do not name their own ``label_filename``.
    """

    name: str
    flavor: str | None = None
    platform: str | None = None
    backend: str | None = None
    inputs: list[TensorConfig] = field(default_factory=list)
    outputs: list[TensorConfig] = field(default_factory=list)
    max_batch_size: int = 0
    dynamic_batching: DynamicBatching | None = None
    instance_group: list[InstanceGroup] = field(default_factory=lambda: [InstanceGroup()])
    version_policy: VersionPolicy = field(default_factory=VersionPolicy)
    parameters: dict[str, str] = field(default_factory=dict)
    labels: str | None = None
    default_model_filename: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_name(self.name, "name")
        for name in ("flavor", "platform", "backend", "labels", "default_model_filename"):
            if getattr(self, name) is not None:
                with _at(name):
                    _text(getattr(self, name))
        with _at("max_batch_size"):
            object.__setattr__(self, "max_batch_size", _int(self.max_batch_size, minimum=0))
        for kind, tensors in (("input", self.inputs), ("output", self.outputs)):
            seen: set[str] = set()
            for index, tensor in enumerate(tensors):
                if tensor.name in seen:
                    raise ValidationError(f"{kind}[{index}].name: {tensor.name!r} appears twice")
                seen.add(tensor.name)
        if self.max_batch_size and self.dynamic_batching:
            for size in self.dynamic_batching.preferred_batch_size:
                if size > self.max_batch_size:
                    raise ValidationError(
                        f"dynamic_batching.preferred_batch_size: {size} exceeds max_batch_size "
                        f"{self.max_batch_size}"
                    )
        if not self.instance_group:
            raise ValidationError("instance_group: must list at least one group")
        if self.flavor is None:
            object.__setattr__(self, "flavor", self._derived_flavor())
        if self.platform is None and self.backend is None and self.flavor is not None:
            platform, backend = _FLAVOR_PLATFORMS.get(self.flavor, (None, self.flavor))
            object.__setattr__(self, "platform", platform)
            object.__setattr__(self, "backend", backend)

    def _derived_flavor(self) -> str | None:
        if self.platform in _PLATFORM_FLAVORS:
            return _PLATFORM_FLAVORS[self.platform]
        if self.backend == "fil":
            return _FIL_FLAVORS.get(self.parameters.get("model_type", ""))
        return _BACKEND_FLAVORS.get(self.backend or "", self.backend)

    def to_dict(self) -> dict[str, Any]:
        """Triton's JSON model config: snake_case fields, ``TYPE_*``/``KIND_*`` enums, numeric dims."""
        rendered: dict[str, Any] = {"name": self.name}
        if self.platform:
            rendered["platform"] = self.platform
        if self.backend:
            rendered["backend"] = self.backend
        rendered["version_policy"] = self.version_policy.to_dict()
        rendered["max_batch_size"] = self.max_batch_size
        rendered["input"] = [tensor.to_dict() for tensor in self.inputs]
        rendered["output"] = [tensor.to_dict() for tensor in self.outputs]
        rendered["instance_group"] = [group.to_dict() for group in self.instance_group]
        if self.dynamic_batching is not None:
            rendered["dynamic_batching"] = self.dynamic_batching.to_dict()
        if self.parameters:
            rendered["parameters"] = {k: {"string_value": v} for k, v in self.parameters.items()}
        if self.labels:
            rendered["labels"] = self.labels
        if self.default_model_filename:
            rendered["default_model_filename"] = self.default_model_filename
        return {**rendered, **self.extra}


# --------------------------------------------------------------------------- loading


def load_config(path: Path) -> ModelConfig:
    """Load ``config.pbtxt`` (or any ``.pbtxt``) as protobuf text, anything else as YAML."""
    path = Path(path)
    return load_config_pbtxt(path) if path.suffix == ".pbtxt" else load_config_yaml(path)


def load_config_yaml(path: Path) -> ModelConfig:
    """Read a YAML config; the model name defaults to the folder the file is in."""
    path = Path(path)
    try:
        data = yaml.safe_load(_read(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValidationError(f"{path}: not valid YAML{where}") from None
    return config_from_dict(data if data is not None else {}, str(path), default_name=path.resolve().parent.name)


def load_config_pbtxt(path: Path) -> ModelConfig:
    """Read Triton's ``config.pbtxt``; the model name defaults to the folder the file is in."""
    path = Path(path)
    data = _TextFormatParser(_read(path), str(path)).parse()
    return config_from_dict(data, str(path), default_name=path.resolve().parent.name)


def config_from_dict(data: object, source: str = "config", *, default_name: str | None = None) -> ModelConfig:
    """Build a config from parsed YAML, parsed protobuf text or Triton's JSON config.

    Repeated fields may be given once without brackets (protobuf text allows that), and both
    Triton (``input``, ``data_type``) and plural (``inputs``, ``datatype``) spellings work.
    """
    try:
        return _build(data, default_name)
    except ValidationError as exc:
        raise ValidationError(f"{source}: {exc}") from None


def _build(data: object, default_name: str | None) -> ModelConfig:
    values = dict(_mapping(data))
    kwargs: dict[str, Any] = {}
    name = values.pop("name", None) or default_name
    if name is None:
        raise _FieldError("name", "missing")
    with _at("name"):
        kwargs["name"] = _text(_single(name))
    for key in ("flavor", "platform", "backend", "labels", "default_model_filename"):
        value = _single(values.pop(key, ""))
        if value != "":  # Triton's JSON prints unset strings as ""
            kwargs[key] = value
    if "max_batch_size" in values:
        with _at("max_batch_size"):
            kwargs["max_batch_size"] = _int(_single(values.pop("max_batch_size")))
    kwargs["inputs"] = _tensors(_pop_alias(values, "input", "inputs"), "input")
    kwargs["outputs"] = _tensors(_pop_alias(values, "output", "outputs"), "output")
    if "dynamic_batching" in values:
        with _at("dynamic_batching"):
            kwargs["dynamic_batching"] = _dynamic_batching(_single(values.pop("dynamic_batching")))
    if "instance_group" in values:
        groups = []
        for index, group in enumerate(_sequence(values.pop("instance_group"))):
            with _at(f"instance_group[{index}]"):
                groups.append(_instance_group(group))
        kwargs["instance_group"] = groups
    if "version_policy" in values:
        with _at("version_policy"):
            kwargs["version_policy"] = _version_policy(_single(values.pop("version_policy")))
    if "parameters" in values:
        with _at("parameters"):
            kwargs["parameters"] = _parameters(values.pop("parameters"))
    return ModelConfig(**kwargs, extra=values)


def _pop_alias(values: dict[str, Any], key: str, alias: str) -> Any:
    if key in values and alias in values:
        raise _FieldError(alias, f"give either {key} or {alias}, not both")
    return values.pop(key, values.pop(alias, None))


def _tensors(items: object, kind: str) -> list[TensorConfig]:
    tensors = []
    for index, item in enumerate(_sequence(items) if items is not None else []):
        with _at(f"{kind}[{index}]"):
            values = dict(_mapping(item))
            datatype = _pop_alias(values, "data_type", "datatype")
            if datatype is None:
                raise _FieldError("data_type", "missing")
            tensors.append(
                TensorConfig(
                    name=_single(values.pop("name", None)),
                    datatype=_single(datatype),
                    dims=tuple(_sequence(values.pop("dims", []))),
                    optional=_single(values.pop("optional", False)),
                    label_filename=_single(values.pop("label_filename", None)) or None,
                    extra=values,
                )
            )
    return tensors


def _dynamic_batching(data: object) -> DynamicBatching:
    values = dict(_mapping(data))
    policy = dict(_mapping(_single(values.pop("default_queue_policy", {}))))
    kwargs: dict[str, Any] = {}
    for key in ("max_queue_size", "default_timeout_microseconds"):  # flat is modelport's shorthand
        if key in values and key in policy:
            raise _FieldError(key, "given both here and in default_queue_policy")
        found = policy if key in policy else values
        if key in found:
            kwargs[key] = _single(found.pop(key))
    if policy:
        values["default_queue_policy"] = policy
    for key in ("max_queue_delay_microseconds", "preserve_ordering", "latency_budget_ms"):
        if key in values:
            kwargs[key] = _single(values.pop(key))
    preferred = _sequence(values.pop("preferred_batch_size", []))
    return DynamicBatching(preferred_batch_size=tuple(preferred), **kwargs, extra=values)


def _instance_group(data: object) -> InstanceGroup:
    values = dict(_mapping(data))
    kwargs = {key: _single(values.pop(key)) for key in ("count", "kind", "threads") if key in values}
    return InstanceGroup(**kwargs, extra=values)


def _version_policy(data: object) -> VersionPolicy:
    values = _mapping(data)
    if len(values) != 1 or next(iter(values)) not in ("latest", "all", "specific"):
        raise ValidationError("give exactly one of latest, all or specific")
    kind, body = next(iter(values.items()))
    body = _mapping(_single(body) if body is not None else {})
    if kind == "latest":
        return VersionPolicy("latest", num_versions=_single(body.get("num_versions", 1)))
    if kind == "specific":
        return VersionPolicy("specific", versions=tuple(_sequence(body.get("versions", []))))
    return VersionPolicy("all")


def _parameters(data: object) -> dict[str, str]:
    """Accept a plain mapping, Triton JSON's ``{k: {string_value}}`` or pbtxt's ``{key, value}`` entries."""
    if isinstance(data, Mapping) and not _is_pbtxt_entry(data):
        entries = list(data.items())
    else:
        entries = []
        for item in _sequence(data):
            if not _is_pbtxt_entry(item):
                raise ValidationError("expected a mapping or entries with key and value")
            entries.append((item["key"], item["value"]))
    parameters: dict[str, str] = {}
    for key, value in entries:
        with _at(str(key)):
            if isinstance(value, Mapping):
                if set(value) != {"string_value"}:
                    raise ValidationError("expected a scalar or {string_value: ...}")
                value = value["string_value"]
            parameters[_text(key)] = _parameter_text(value)
    return parameters


def _is_pbtxt_entry(value: object) -> bool:
    return isinstance(value, Mapping) and set(value) == {"key", "value"} and isinstance(value["value"], Mapping)


def _parameter_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ValidationError(f"expected a scalar, got {type(value).__name__}")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"{path}: does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path}: cannot be read ({exc})") from None


# --------------------------------------------------------------------------- field checks


class _FieldError(ValidationError):
    """A validation error that knows the field path it belongs to, so enclosing fields can prefix it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@contextmanager
def _at(path: str) -> Iterator[None]:
    """Attribute validation errors raised inside to ``path``; nested paths join with dots."""
    try:
        yield
    except _FieldError as exc:
        raise _FieldError(f"{path}.{exc.path}", exc.reason) from None
    except ValidationError as exc:
        raise _FieldError(path, str(exc)) from None


def _describe(value: object) -> str:
    return f"{value!r}" if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__


def _int(value: object, *, minimum: int | None = None) -> int:
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value)  # Triton's JSON writes int64 fields as strings
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"expected an integer, got {_describe(value)}")
    if minimum is not None and value < minimum:
        raise ValidationError(f"{value} is less than {minimum}")
    return value


def _positive_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValidationError(f"expected a positive number, got {_describe(value)}")
    return float(value)


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"expected true or false, got {_describe(value)}")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"expected a non-empty string, got {_describe(value)}")
    return value


def _dims(value: object) -> tuple[int, ...]:
    dims = []
    for dim in _sequence(value):
        dim = _int(dim)
        if dim == 0 or dim < -1:
            raise ValidationError(f"{dim} is not -1 or a positive integer")
        dims.append(dim)
    return tuple(dims)


def _mapping(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(f"expected a mapping, got {_describe(value)}")
    return value


def _sequence(value: object) -> list[Any]:
    """Repeated fields: a list, or a single value given once (protobuf text allows both)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _single(value: object) -> Any:
    if isinstance(value, list):
        raise ValidationError("given more than once; expected a single value")
    return value


# --------------------------------------------------------------------------- protobuf text


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
_CLOSING = {"{": "}", "<": ">"}  # protobuf text delimits messages with either pair


class _TextFormatParser:
    """Protobuf text format without a schema: the subset Triton configs use.

    Produces plain dicts. A field seen once maps to its value; a field seen again, or written
    with ``[...]``, maps to a list. Enums stay strings (``TYPE_FP32``), ``true``/``false`` become
    bools, numbers become int or float. Both ``{}`` and ``<>`` delimit messages.
    """

    _TOKEN = re.compile(
        r"""(?P<space>\s+|\#[^\n]*)
        |(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
        |(?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)[fF]?)
        |(?P<ident>-?[A-Za-z_][\w.]*)
        |(?P<punct>[{}<>\[\]:,;])""",
        re.VERBOSE,
    )

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.tokens: list[tuple[str, str, int]] = []  # (kind, text, line)
        position, line = 0, 1
        while position < len(text):
            match = self._TOKEN.match(text, position)
            if match is None:
                raise ValidationError(f"{source}: line {line}: unexpected character {text[position]!r}")
            if match.lastgroup != "space":
                self.tokens.append((match.lastgroup or "", match.group(), line))
            line += match.group().count("\n")
            position = match.end()
        self.position = 0

    def parse(self) -> dict[str, Any]:
        return self._message(closing=None)

    def _peek(self) -> tuple[str, str, int]:
        if self.position < len(self.tokens):
            return self.tokens[self.position]
        last_line = self.tokens[-1][2] if self.tokens else 1
        return ("end", "end of file", last_line)

    def _next(self) -> tuple[str, str, int]:
        token = self._peek()
        self.position += 1
        return token

    def _fail(self, token: tuple[str, str, int], expected: str) -> ValidationError:
        return ValidationError(f"{self.source}: line {token[2]}: expected {expected}, got {token[1]!r}")

    def _message(self, closing: str | None) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        while True:
            token = self._next()
            if token[0] == "end" and closing is None:
                return fields
            if token[0] == "punct" and token[1] == closing:
                return fields
            if token[0] != "ident":
                raise self._fail(token, "a field name" + (f" or {closing!r}" if closing else ""))
            name = token[1]
            after = self._peek()
            if after[1] == ":":
                self.position += 1
            elif after[1] not in _CLOSING and after[1] != "[":  # the colon is optional before messages
                raise self._fail(after, f"':' or '{{' after {name!r}")
            if self._peek()[1] == "[":
                self.position += 1
                self._add(fields, name, self._list(), repeated=True)
            else:
                self._add(fields, name, self._value(), repeated=False)
            if self._peek()[1] in (",", ";"):
                self.position += 1

    def _list(self) -> list[Any]:
        items: list[Any] = []
        if self._peek()[1] == "]":
            self.position += 1
            return items
        while True:
            items.append(self._value())
            token = self._next()
            if token[1] == "]":
                return items
            if token[1] != ",":
                raise self._fail(token, "',' or ']'")

    def _value(self) -> Any:
        token = self._next()
        kind, text, _ = token
        if kind == "punct" and text in _CLOSING:
            return self._message(closing=_CLOSING[text])
        if kind == "string":
            value = self._unquote(text)
            while self._peek()[0] == "string":  # adjacent literals concatenate
                value += self._unquote(self._next()[1])
            return value
        if kind == "number":
            return self._number(text)
        if kind == "ident":
            if text in ("true", "True"):
                return True
            if text in ("false", "False"):
                return False
            if text.lstrip("-").lower() in ("inf", "infinity", "nan"):
                return float(text)
            return text
        raise self._fail(token, "a value")

    @staticmethod
    def _number(text: str) -> int | float:
        body = text.rstrip("fF") if not text.lower().startswith(("0x", "-0x", "+0x")) else text
        if re.fullmatch(r"[-+]?0[xX][0-9a-fA-F]+", body):
            return int(body, 16)
        if re.fullmatch(r"[-+]?\d+", body):
            return int(body)
        return float(body)

    def _unquote(self, text: str) -> str:
        return re.sub(r"\\(.)", lambda match: _ESCAPES.get(match.group(1), match.group(1)), text[1:-1])

    @staticmethod
    def _add(fields: dict[str, Any], name: str, value: Any, *, repeated: bool) -> None:
        if name not in fields:
            fields[name] = value if not repeated else list(value)
            return
        existing = fields[name]
        if not isinstance(existing, list):
            existing = fields[name] = [existing]
        if repeated:
            existing.extend(value)
        else:
            existing.append(value)


# --------------------------------------------------------------------------- completion


def complete_config(
    config: ModelConfig | None,
    predictor: Predictor,
    *,
    name: str | None = None,
    flavor: str | None = None,
) -> ModelConfig:
    """Fill a config from what the loaded model says about itself, as Triton auto-completes.

    Missing inputs/outputs come from the model's metadata. A model whose every tensor starts
    with a variable dim is batchable: an unset (0) ``max_batch_size`` becomes
    :data:`DEFAULT_MAX_BATCH_SIZE` with a default ``dynamic_batching``, unless the configured
    tensors spell out the full rank (then dim 0 is theirs and nothing is batched), as Triton's
    onnxruntime backend does. Configured tensors must exist in the model with the same
    datatype and compatible dims. An empty ``preferred_batch_size`` becomes
    ``[max_batch_size]``, Triton's normalization. ``name``/``flavor`` are used when
    ``config`` is None (a config-less model folder).
    """
    if config is None:
        if name is None:
            raise TypeError("complete_config needs a name when there is no config")
        config = ModelConfig(name=name, flavor=flavor)
    elif config.flavor is None and flavor is not None:
        config = replace(config, flavor=flavor)
    model = {"input": predictor.inputs, "output": predictor.outputs}
    configured = {"input": config.inputs, "output": config.outputs}

    max_batch_size = config.max_batch_size
    dynamic_batching = config.dynamic_batching
    if max_batch_size > 0 and not predictor.batch_dim:
        raise ValidationError(
            f"max_batch_size: {max_batch_size}, but model {config.name!r} has no variable batch "
            "dim 0 on every input and output; set max_batch_size: 0"
        )
    if max_batch_size == 0 and predictor.batch_dim and not _spells_full_rank(configured, model):
        max_batch_size = DEFAULT_MAX_BATCH_SIZE
        if dynamic_batching is None:
            dynamic_batching = DynamicBatching()
    if dynamic_batching is not None and max_batch_size == 0:
        raise ValidationError("dynamic_batching: needs max_batch_size > 0")
    if dynamic_batching is not None and not dynamic_batching.preferred_batch_size:
        dynamic_batching = replace(dynamic_batching, preferred_batch_size=(max_batch_size,))

    strip = 1 if max_batch_size > 0 else 0
    completed: dict[str, list[TensorConfig]] = {}
    for kind in ("input", "output"):
        if configured[kind]:
            _check_against_model(kind, configured[kind], model[kind], strip)
            completed[kind] = configured[kind]
        else:
            completed[kind] = [TensorConfig(m.name, m.datatype, tuple(m.shape[strip:])) for m in model[kind]]
    return replace(
        config,
        inputs=completed["input"],
        outputs=completed["output"],
        max_batch_size=max_batch_size,
        dynamic_batching=dynamic_batching,
    )


def _spells_full_rank(configured: dict[str, list[TensorConfig]], model: dict[str, list[TensorMeta]]) -> bool:
    for kind, tensors in configured.items():
        shapes = {meta.name: meta.shape for meta in model[kind]}
        if any(t.name in shapes and len(t.dims) == len(shapes[t.name]) for t in tensors):
            return True
    return False


def _check_against_model(kind: str, tensors: list[TensorConfig], metas: list[TensorMeta], strip: int) -> None:
    by_name = {meta.name: meta for meta in metas}
    for index, tensor in enumerate(tensors):
        meta = by_name.get(tensor.name)
        field_path = f"{kind}[{index}]"
        if meta is None:
            known = ", ".join(by_name) or "none"
            raise ValidationError(f"{field_path}.name: the model has no {kind} {tensor.name!r} (it has {known})")
        if tensor.datatype != meta.datatype:
            raise ValidationError(
                f"{field_path}.data_type: {tensor.datatype}, but the model's {kind} {tensor.name!r} is {meta.datatype}"
            )
        model_dims = tuple(meta.shape[strip:])
        compatible = len(tensor.dims) == len(model_dims) and all(
            m == -1 or c == m for c, m in zip(tensor.dims, model_dims)
        )
        if not compatible:
            raise ValidationError(
                f"{field_path}.dims: {list(tensor.dims)} does not fit the model's {kind} {tensor.name!r} "
                f"with dims {list(model_dims)}" + (" (after the batch dim)" if strip else "")
            )
