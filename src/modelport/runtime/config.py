"""A model's serving configuration: Triton's ``ModelConfig`` subset that modelport acts on.

One dataclass tree is read from either ``config.yaml`` or Triton's ``config.pbtxt`` (protobuf
text format, parsed by :mod:`.pbtxt` so that no protobuf schema has to ship), so that an
existing Triton model repository serves unchanged and a modelport-native folder can use YAML.
Fields modelport does not act on are kept in ``extra`` rather than rejected, because real Triton
configs carry many (``optimization``, ``model_warmup``...), and they come back out of
:meth:`ModelConfig.to_dict`, which renders the JSON that Triton's ``GET /v2/models/{m}/config``
returns.

Every config object validates itself on construction; the loaders prefix each message with the
file and the field path (``config.pbtxt: input[0].dims: ...``), which the checks in
:mod:`.fields` build.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from modelport.core.datatypes import DATATYPES, TRITON_DATATYPES, triton_name
from modelport.core.errors import ValidationError
from modelport.core.names import validate_name
from modelport.runtime import flavor_catalog
from modelport.runtime.fields import (
    FieldError,
    as_bool,
    as_dims,
    as_int,
    as_mapping,
    as_positive_float,
    as_sequence,
    as_text,
    at,
    single,
)
from modelport.runtime.pbtxt import parse_pbtxt

if TYPE_CHECKING:
    from modelport.runtime.predictor import Predictor, TensorMeta


# Triton's onnxruntime backend batches a config-less model whose every tensor starts with a
# variable dim up to this size (its --backend-config default-max-batch-size).
DEFAULT_MAX_BATCH_SIZE = 4
# Tabular flavors run any number of rows in one vectorised call, in a few values of memory a row,
# and pay a fixed cost per call: a config-less one batches up to what Triton's FIL backend
# documents for tree models, so that a large table is a few calls, not thousands of 4-row ones.
TABULAR_MAX_BATCH_SIZE = 32768

_KINDS = {"KIND_CPU": "cpu", "KIND_GPU": "gpu", "KIND_AUTO": "cpu", "cpu": "cpu", "gpu": "gpu"}


def normalize_datatype(value: object) -> str:
    """Return the v2 name (``FP32``) for a v2 or Triton config name (``TYPE_FP32``)."""
    if isinstance(value, str):
        if value in DATATYPES:
            return value
        if value in TRITON_DATATYPES:
            return TRITON_DATATYPES[value]
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
        with at("name"):
            as_text(self.name)
        with at("data_type"):
            object.__setattr__(self, "datatype", normalize_datatype(self.datatype))
        with at("dims"):
            object.__setattr__(self, "dims", as_dims(self.dims))
        with at("optional"):
            as_bool(self.optional)
        if self.label_filename is not None:
            with at("label_filename"):
                as_text(self.label_filename)

    def to_dict(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "name": self.name,
            "data_type": triton_name(self.datatype),
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
        with at("preferred_batch_size"):
            sizes = tuple(as_int(size, minimum=1) for size in as_sequence(self.preferred_batch_size))
            object.__setattr__(self, "preferred_batch_size", sizes)
        for name in ("max_queue_delay_microseconds", "max_queue_size", "default_timeout_microseconds"):
            with at(name):
                object.__setattr__(self, name, as_int(getattr(self, name), minimum=0))
        with at("preserve_ordering"):
            as_bool(self.preserve_ordering)
        if self.latency_budget_ms is not None:
            with at("latency_budget_ms"):
                object.__setattr__(self, "latency_budget_ms", as_positive_float(self.latency_budget_ms))

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
    ``threads`` is modelport's own (Triton spreads it over backend parameters), and so is
    ``process``: whether each instance runs in a process of its own rather than a thread of the
    server (None: decided by the flavor, see ``modelport.serving.process_instance``).
    """

    count: int = 1
    kind: Literal["cpu", "gpu"] = "cpu"
    threads: int | None = None
    process: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        with at("count"):
            object.__setattr__(self, "count", as_int(self.count, minimum=1))
        with at("kind"):
            if self.kind not in _KINDS:
                raise ValidationError(f"{self.kind!r} is not a kind; use KIND_CPU or KIND_GPU")
            object.__setattr__(self, "kind", _KINDS[self.kind])
        if self.threads is not None:
            with at("threads"):
                object.__setattr__(self, "threads", as_int(self.threads, minimum=1))
        if self.process is not None:
            with at("process"):
                object.__setattr__(self, "process", as_bool(self.process))

    def to_dict(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {"count": self.count, "kind": f"KIND_{self.kind.upper()}"}
        if self.threads is not None:
            rendered["threads"] = self.threads
        if self.process is not None:
            rendered["process"] = self.process
        return {**rendered, **self.extra}


@dataclass(frozen=True)
class VersionPolicy:
    """Which numeric versions of a model are served: Triton's ``latest``/``all``/``specific``."""

    kind: Literal["latest", "all", "specific"] = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        with at("kind"):
            if self.kind not in ("latest", "all", "specific"):
                raise ValidationError(f"{self.kind!r} is not a policy; use latest, all or specific")
        with at("num_versions"):
            object.__setattr__(self, "num_versions", as_int(self.num_versions, minimum=1))
        with at("versions"):
            versions = tuple(as_int(v, minimum=1) for v in as_sequence(self.versions))
            if self.kind == "specific" and not versions:
                raise ValidationError("must list at least one version")
            object.__setattr__(self, "versions", versions)

    def select(self, available: Iterable[int]) -> list[int]:
        """The versions to serve out of those present, ascending."""
        versions = sorted(set(available))
        if self.kind == "all":
            return versions
        if self.kind == "latest":
            return versions[-self.num_versions :]
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
                with at(name):
                    as_text(getattr(self, name))
        with at("max_batch_size"):
            object.__setattr__(self, "max_batch_size", as_int(self.max_batch_size, minimum=0))
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
                        f"dynamic_batching.preferred_batch_size: {size} exceeds max_batch_size {self.max_batch_size}"
                    )
        if not self.instance_group:
            raise ValidationError("instance_group: must list at least one group")
        if self.flavor is None:
            object.__setattr__(self, "flavor", self._derived_flavor())
        if self.platform is None and self.backend is None and self.flavor is not None:
            platform, backend = flavor_catalog.triton_names(self.flavor)
            object.__setattr__(self, "platform", platform)
            object.__setattr__(self, "backend", backend)

    def _derived_flavor(self) -> str | None:
        return flavor_catalog.flavor_of_triton(self.platform, self.backend, self.parameters.get("model_type"))

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
    data = parse_pbtxt(_read(path), str(path))
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
    values = dict(as_mapping(data))
    kwargs: dict[str, Any] = {}
    name = values.pop("name", None) or default_name
    if name is None:
        raise FieldError("name", "missing")
    with at("name"):
        kwargs["name"] = as_text(single(name))
    for key in ("flavor", "platform", "backend", "labels", "default_model_filename"):
        value = single(values.pop(key, ""))
        if value != "":  # Triton's JSON prints unset strings as ""
            kwargs[key] = value
    if "max_batch_size" in values:
        with at("max_batch_size"):
            kwargs["max_batch_size"] = as_int(single(values.pop("max_batch_size")))
    kwargs["inputs"] = _tensors(_pop_alias(values, "input", "inputs"), "input")
    kwargs["outputs"] = _tensors(_pop_alias(values, "output", "outputs"), "output")
    if "dynamic_batching" in values:
        with at("dynamic_batching"):
            kwargs["dynamic_batching"] = _dynamic_batching(single(values.pop("dynamic_batching")))
    if "instance_group" in values:
        groups = []
        for index, group in enumerate(as_sequence(values.pop("instance_group"))):
            with at(f"instance_group[{index}]"):
                groups.append(_instance_group(group))
        kwargs["instance_group"] = groups
    if "version_policy" in values:
        with at("version_policy"):
            kwargs["version_policy"] = _version_policy(single(values.pop("version_policy")))
    if "parameters" in values:
        with at("parameters"):
            kwargs["parameters"] = _parameters(values.pop("parameters"))
    return ModelConfig(**kwargs, extra=values)


_QUEUE_POLICY = ("max_queue_size", "default_timeout_microseconds")  # Triton nests them in default_queue_policy


def override_config(
    config: ModelConfig | None, name: str, overrides: Mapping[str, Any], source: str = "model config"
) -> ModelConfig:
    """``config`` (or an empty one named ``name``) with ``overrides`` laid over it: mappings merge
    key by key (``dynamic_batching: {max_queue_delay_microseconds: 500}`` keeps the other
    batching fields), anything else replaces. Deployments and the profiler tune a model's
    batching and instances this way without editing the files registered with it."""
    if "name" in overrides:
        raise ValidationError(f"{source}: name: the served name cannot be overridden")
    base = config.to_dict() if config is not None else {"name": name}
    batching = overrides.get("dynamic_batching")
    if isinstance(batching, Mapping):  # the flat queue-policy shorthand, nested as to_dict renders it
        flat = {key: batching[key] for key in _QUEUE_POLICY if key in batching}
        nested = {key: value for key, value in batching.items() if key not in _QUEUE_POLICY}
        if flat:
            nested["default_queue_policy"] = {**nested.get("default_queue_policy", {}), **flat}
        overrides = {**overrides, "dynamic_batching": nested}
    return config_from_dict(_merged(base, overrides), source)


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in overrides.items():
        current = result.get(key)
        both_mappings = isinstance(current, Mapping) and isinstance(value, Mapping)
        result[key] = _merged(current, value) if both_mappings else value
    return result


def _pop_alias(values: dict[str, Any], key: str, alias: str) -> Any:
    if key in values and alias in values:
        raise FieldError(alias, f"give either {key} or {alias}, not both")
    return values.pop(key, values.pop(alias, None))


def _tensors(items: object, kind: str) -> list[TensorConfig]:
    tensors = []
    for index, item in enumerate(as_sequence(items) if items is not None else []):
        with at(f"{kind}[{index}]"):
            values = dict(as_mapping(item))
            datatype = _pop_alias(values, "data_type", "datatype")
            if datatype is None:
                raise FieldError("data_type", "missing")
            tensors.append(
                TensorConfig(
                    name=single(values.pop("name", None)),
                    datatype=single(datatype),
                    dims=tuple(as_sequence(values.pop("dims", []))),
                    optional=single(values.pop("optional", False)),
                    label_filename=single(values.pop("label_filename", None)) or None,
                    extra=values,
                )
            )
    return tensors


def _dynamic_batching(data: object) -> DynamicBatching:
    values = dict(as_mapping(data))
    policy = dict(as_mapping(single(values.pop("default_queue_policy", {}))))
    kwargs: dict[str, Any] = {}
    for key in _QUEUE_POLICY:  # flat is modelport's shorthand
        if key in values and key in policy:
            raise FieldError(key, "given both here and in default_queue_policy")
        found = policy if key in policy else values
        if key in found:
            kwargs[key] = single(found.pop(key))
    if policy:
        values["default_queue_policy"] = policy
    for key in ("max_queue_delay_microseconds", "preserve_ordering", "latency_budget_ms"):
        if key in values:
            kwargs[key] = single(values.pop(key))
    preferred = as_sequence(values.pop("preferred_batch_size", []))
    return DynamicBatching(preferred_batch_size=tuple(preferred), **kwargs, extra=values)


def _instance_group(data: object) -> InstanceGroup:
    values = dict(as_mapping(data))
    kwargs = {key: single(values.pop(key)) for key in ("count", "kind", "threads", "process") if key in values}
    return InstanceGroup(**kwargs, extra=values)


def _version_policy(data: object) -> VersionPolicy:
    values = as_mapping(data)
    if len(values) != 1 or next(iter(values)) not in ("latest", "all", "specific"):
        raise ValidationError("give exactly one of latest, all or specific")
    kind, body = next(iter(values.items()))
    body = as_mapping(single(body) if body is not None else {})
    if kind == "latest":
        return VersionPolicy("latest", num_versions=single(body.get("num_versions", 1)))
    if kind == "specific":
        return VersionPolicy("specific", versions=tuple(as_sequence(body.get("versions", []))))
    return VersionPolicy("all")


def _parameters(data: object) -> dict[str, str]:
    """Accept a plain mapping, Triton JSON's ``{k: {string_value}}`` or pbtxt's ``{key, value}`` entries."""
    if isinstance(data, Mapping) and not _is_pbtxt_entry(data):
        entries = list(data.items())
    else:
        entries = []
        for item in as_sequence(data):
            if not _is_pbtxt_entry(item):
                raise ValidationError("expected a mapping or entries with key and value")
            entries.append((item["key"], item["value"]))
    parameters: dict[str, str] = {}
    for key, value in entries:
        with at(str(key)):
            if isinstance(value, Mapping):
                if set(value) != {"string_value"}:
                    raise ValidationError("expected a scalar or {string_value: ...}")
                value = value["string_value"]
            parameters[as_text(key)] = _parameter_text(value)
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
    :data:`DEFAULT_MAX_BATCH_SIZE` (:data:`TABULAR_MAX_BATCH_SIZE` for sklearn, XGBoost and
    LightGBM) with a default ``dynamic_batching``, unless the configured
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
        max_batch_size = flavor_catalog.default_max_batch_size(config.flavor) or DEFAULT_MAX_BATCH_SIZE
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
