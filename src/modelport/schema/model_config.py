"""A model's serving configuration: Triton's ``ModelConfig`` subset that modelport acts on.

One tree of definitions is read from ``config.yaml``, Triton's ``config.pbtxt`` (protobuf text,
turned into the same mapping by ``runtime.pbtxt``) or Triton's JSON config, so an existing
Triton model repository serves unchanged and a modelport-native folder can use YAML. Every
spelling those formats give one value means that value: Triton's names (``input``,
``data_type``) or plural ones (``inputs``, ``datatype``), ``TYPE_FP32`` or ``FP32``, ``KIND_CPU``
or ``cpu``, int64 fields as JSON strings, a repeated field given once.

Fields of Triton's schema that modelport does not act on (``optimization``, ``model_warmup``,
``reshape``...) are kept in each object's ``extra`` as written and come back out of ``to_dict``,
which renders the JSON that Triton's ``GET /v2/models/{m}/config`` returns; which fields those
are comes from Triton's own schema (:mod:`.triton`), so any other key is an error naming its path
with the closest known key. Python callers build the objects directly (``TensorConfig("x",
"FP32", (3,))``); they validate themselves the same way and raise one-line
:class:`~modelport.core.errors.ValidationError` naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Protocol, cast

import pydantic
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonDict, SkipJsonSchema
from typing_extensions import Self

from modelport.core.datatypes import DATATYPES, TRITON_DATATYPES, triton_name
from modelport.core.enums import StrEnum
from modelport.core.errors import ValidationError
from modelport.core.names import validate_name
from modelport.schema.base import Definition, describe_error, parse, suggestion
from modelport.schema.triton import field_names


class TritonNames(Protocol):
    """Which Triton platform/backend a flavor is, and back: the flavors' business, not the schema's.

    Flavors are registered in the runtime layer (``runtime.flavor_catalog``, which outside packages
    extend), which this layer cannot import; the catalog installs itself here with
    :func:`use_triton_names` when it is imported, as everything that loads or serves models does.
    Without it a flavor is its own backend and a backend its own flavor.
    """

    def triton_names(self, name: str) -> tuple[str | None, str]: ...

    def flavor_of_triton(self, platform: str | None, backend: str | None, model_type: str | None) -> str | None: ...


class _PlainNames:
    def triton_names(self, name: str) -> tuple[str | None, str]:
        return None, name

    def flavor_of_triton(self, platform: str | None, backend: str | None, model_type: str | None) -> str | None:
        return backend


_names: TritonNames = _PlainNames()


def use_triton_names(names: TritonNames) -> None:
    """Make ``names`` what configs derive their flavor or Triton platform/backend from."""
    global _names
    _names = names


# Triton nests these in dynamic_batching.default_queue_policy; modelport also reads them flat.
_QUEUE_POLICY = ("max_queue_size", "default_timeout_microseconds")


class InstanceKind(StrEnum):
    """Where an instance runs. Triton's ``KIND_AUTO`` is read as ``cpu``: modelport only uses a
    GPU when told to."""

    CPU = "cpu"
    GPU = "gpu"


class PolicyKind(StrEnum):
    """Which versions are served: the newest ``num_versions``, all, or the listed ones."""

    LATEST = "latest"
    ALL = "all"
    SPECIFIC = "specific"


_KINDS = {
    "KIND_CPU": InstanceKind.CPU,
    "KIND_GPU": InstanceKind.GPU,
    "KIND_AUTO": InstanceKind.CPU,
    "cpu": InstanceKind.CPU,
    "gpu": InstanceKind.GPU,
}


# -- value types ---------------------------------------------------------------------------------


def _not_bool(value: object) -> object:
    """YAML's ``yes``/``true`` is not a count: pydantic would read it as 1."""
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _repeated(value: object) -> object:
    """A repeated field given once (``dims: 8``, one ``input`` mapping) is a list of one."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _dim(value: int) -> int:
    if value == 0 or value < -1:
        raise ValueError(f"{value} is not -1 or a positive integer")
    return value


def _datatype(value: object) -> str:
    """The v2 name (``FP32``) for a v2 or Triton config name (``TYPE_FP32``)."""
    if isinstance(value, str):
        if value in DATATYPES:
            return value
        if value in TRITON_DATATYPES:
            return TRITON_DATATYPES[value]
    raise ValueError(f"{value!r} is not a datatype; use one of {', '.join(DATATYPES)} (or TYPE_FP32 style)")


Int = Annotated[int, BeforeValidator(_not_bool)]
Size = Annotated[Int, Field(ge=1)]
Count = Annotated[Int, Field(ge=0)]
Text = Annotated[str, Field(min_length=1)]
Dims = Annotated[tuple[Annotated[Int, pydantic.AfterValidator(_dim)], ...], BeforeValidator(_repeated)]
Datatype = Annotated[
    str, BeforeValidator(_datatype), WithJsonSchema({"enum": [*DATATYPES, *TRITON_DATATYPES], "type": "string"})
]


def normalize_datatype(value: object) -> str:
    """Return the v2 name (``FP32``) for a v2 or Triton config name (``TYPE_FP32``)."""
    try:
        return _datatype(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


# -- the shared behaviour ------------------------------------------------------------------------


if TYPE_CHECKING:  # pydantic's metaclass, named only where its type is checked: the module is private
    from pydantic._internal._model_construction import ModelMetaclass
else:
    ModelMetaclass = type(Definition)


class _Constructor(ModelMetaclass):
    """Calling a config class: positional arguments fill the fields in order (``extra`` last), as
    the dataclasses these were did, and a bad value raises modelport's one-line
    :class:`ValidationError`. Validating a document does not pass through here: nested parts
    keep pydantic's errors, so the path of the failing field is whole."""

    def __call__(cls, *args: Any, **data: Any) -> Any:
        names = sorted(cast("type[Definition]", cls).model_fields, key=lambda name: name == "extra")
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__} takes at most {len(names)} positional arguments")
        data = {**dict(zip(names, args)), **data}
        try:
            return super().__call__(**data)
        except pydantic.ValidationError as exc:
            raise ValidationError(describe_error(exc, data)) from None


class ConfigPart(Definition, metaclass=_Constructor):
    """A part of a model config: built from a document or directly, positionally or by name.

    Fields with a Triton name (``data_type``) take it as their alias, so documents use Triton's
    name and errors name the field as the document wrote it; Python code uses the field's own.
    """

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated as a new object is."""
        return type(self)(**{**{name: getattr(self, name) for name in type(self).model_fields}, **changes})

    @model_validator(mode="before")
    @classmethod
    def _read_document(cls, data: Any) -> Any:
        """A mapping in any of the spellings documents use, turned into the fields' values."""
        return cls._document(dict(data)) if isinstance(data, Mapping) else data

    @classmethod
    def _document(cls, data: dict[str, Any]) -> dict[str, Any]:
        return data


def _triton_fields(*messages: str) -> frozenset[str]:
    return frozenset().union(*(field_names(message) for message in messages))


class Extensible(ConfigPart):
    """A config part that keeps the Triton fields it does not act on, as written, in ``extra``."""

    extra: SkipJsonSchema[dict[str, Any]] = {}

    @classmethod
    def _document(cls, data: dict[str, Any]) -> dict[str, Any]:
        kept = [key for key in data if key in cls.kept_keys]
        if kept:
            data["extra"] = {**data.get("extra", {}), **{key: data.pop(key) for key in kept}}
        return data


def _either(data: dict[str, Any], key: str, alias: str) -> None:
    if key in data and alias in data:
        raise ValueError(f"{alias}: give either {key} or {alias}, not both")


# -- the parts -----------------------------------------------------------------------------------


class TensorConfig(Extensible):
    """One input or output. ``dims`` exclude the batch dim when ``max_batch_size > 0``."""

    kept_keys = _triton_fields("ModelInput", "ModelOutput") - {
        "name",
        "data_type",
        "dims",
        "optional",
        "label_filename",
    }

    name: Text
    datatype: Datatype = Field(alias="data_type")
    dims: Dims = ()
    optional: bool = False
    label_filename: str | None = None  # outputs only: the classification labels of this output

    @classmethod
    def _document(cls, data: dict[str, Any]) -> dict[str, Any]:
        _either(data, "data_type", "datatype")
        if data.get("label_filename") == "":  # Triton's JSON prints an unset string as ""
            data["label_filename"] = None
        return super()._document(data)

    def to_dict(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {"name": self.name, "data_type": triton_name(self.datatype), "dims": list(self.dims)}
        if self.optional:
            rendered["optional"] = True
        if self.label_filename:
            rendered["label_filename"] = self.label_filename
        return {**rendered, **self.extra}


class DynamicBatching(Extensible):
    """Triton's ``dynamic_batching``; an empty ``preferred_batch_size`` means "as large as possible".

    ``max_queue_size`` and ``default_timeout_microseconds`` live in Triton's
    ``default_queue_policy`` (flat is modelport's shorthand); 0 means "not set" (Triton:
    unbounded / no timeout). ``latency_budget_ms`` is modelport's own: the latency a deployment
    promises, against which batching settings are tuned.
    """

    kept_keys = field_names("ModelDynamicBatching") - {
        "preferred_batch_size",
        "max_queue_delay_microseconds",
        "preserve_ordering",
        "latency_budget_ms",
        *_QUEUE_POLICY,
    }

    preferred_batch_size: Annotated[tuple[Size, ...], BeforeValidator(_repeated)] = ()
    max_queue_delay_microseconds: Count = 0
    preserve_ordering: bool = False
    max_queue_size: Count = 0
    default_timeout_microseconds: Count = 0
    latency_budget_ms: Annotated[float, Field(gt=0)] | None = None

    @classmethod
    def _document(cls, data: dict[str, Any]) -> dict[str, Any]:
        policy = data.pop("default_queue_policy", None)
        if isinstance(policy, Mapping):
            policy = dict(policy)
            for key in _QUEUE_POLICY:
                if key in policy:
                    if key in data:
                        raise ValueError(f"{key}: given both here and in default_queue_policy")
                    data[key] = policy.pop(key)
        if policy:
            data["default_queue_policy"] = policy
        return super()._document(data)

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


class InstanceGroup(Extensible):
    """How many copies of the model run, where, and with how many threads each.

    ``threads`` is modelport's own (Triton spreads it over backend parameters), and so is
    ``process``: whether each instance runs in a process of its own rather than a thread of the
    server (None: decided by the flavor, see ``modelport.serving.process_instance``).
    """

    kept_keys = field_names("ModelInstanceGroup") - {"count", "kind", "threads", "process"}

    count: Size = 1
    kind: Annotated[InstanceKind, WithJsonSchema({"enum": [*_KINDS], "type": "string"})] = InstanceKind.CPU
    threads: Size | None = None
    process: bool | None = None

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, value: object) -> object:
        if isinstance(value, str) and value in _KINDS:
            return _KINDS[value]
        raise ValueError(f"{value!r} is not a kind; use KIND_CPU or KIND_GPU")

    def to_dict(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {"count": self.count, "kind": f"KIND_{self.kind.value.upper()}"}
        if self.threads is not None:
            rendered["threads"] = self.threads
        if self.process is not None:
            rendered["process"] = self.process
        return {**rendered, **self.extra}


_POLICY_BODIES = {PolicyKind.LATEST: ("num_versions",), PolicyKind.ALL: (), PolicyKind.SPECIFIC: ("versions",)}


class VersionPolicy(ConfigPart):
    """Which numeric versions of a model are served: Triton's ``latest``/``all``/``specific``.

    Documents write Triton's one-key form (``{latest: {num_versions: 2}}``); the fields are its
    flattening, which is what Python code builds and reads.
    """

    kept_keys = frozenset(kind.value for kind in PolicyKind)

    kind: PolicyKind = PolicyKind.LATEST
    num_versions: Size = 1
    versions: Annotated[tuple[Size, ...], BeforeValidator(_repeated)] = Field((), validate_default=True)

    @classmethod
    def _document(cls, data: dict[str, Any]) -> dict[str, Any]:
        if set(data) <= set(cls.model_fields):  # the fields themselves (``{}``: Triton's default, latest 1)
            return data
        if len(data) != 1 or next(iter(data)) not in cls.kept_keys:
            raise ValueError("give exactly one of latest, all or specific")
        kind, body = next(iter(data.items()))
        body = {} if body is None else body
        if not isinstance(body, Mapping):
            raise ValueError(f"{kind}: expected a mapping")
        known = _POLICY_BODIES[PolicyKind(kind)]
        for key in body:
            if key not in known:
                raise ValueError(f"{kind}.{key}: unknown key{suggestion(str(key), known) if known else ''}")
        return {"kind": kind, **body}

    @field_validator("versions")
    @classmethod
    def _listed(cls, versions: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        if info.data.get("kind") == PolicyKind.SPECIFIC and not versions:
            raise ValueError("must list at least one version")
        return versions

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        """The document's one-key form, not the fields."""
        sizes = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1}

        def one(kind: str, body: dict[str, Any]) -> dict[str, Any]:
            inner = {"type": "object", "properties": body, "additionalProperties": False}
            return {"type": "object", "properties": {kind: inner}, "required": [kind], "additionalProperties": False}

        return {
            "title": "VersionPolicy",
            "oneOf": [
                one("latest", {"num_versions": {"type": "integer", "minimum": 1}}),
                one("all", {}),
                one("specific", {"versions": sizes}),
            ],
        }

    def select(self, available: Iterable[int]) -> list[int]:
        """The versions to serve out of those present, ascending."""
        versions = sorted(set(available))
        if self.kind == PolicyKind.ALL:
            return versions
        if self.kind == PolicyKind.LATEST:
            return versions[-self.num_versions :]
        return [version for version in versions if version in self.versions]

    def to_dict(self) -> dict[str, Any]:
        if self.kind == PolicyKind.LATEST:
            return {"latest": {"num_versions": self.num_versions}}
        if self.kind == PolicyKind.ALL:
            return {"all": {}}
        return {"specific": {"versions": list(self.versions)}}


def _parameter_text(value: object) -> str:
    """A parameter value: a scalar, or Triton's ``{string_value: ...}``; always text."""
    if isinstance(value, Mapping):
        if set(value) != {"string_value"}:
            raise ValueError("expected a scalar or {string_value: ...}")
        value = value["string_value"]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ValueError(f"expected a scalar, got {type(value).__name__}")


def _parameter_entries(value: object) -> object:
    """pbtxt's map entries written as a list (``[{key: k, value: v}]``: parameters, an ensemble
    step's tensor maps) as a mapping."""
    if isinstance(value, list) and all(isinstance(item, Mapping) and set(item) == {"key", "value"} for item in value):
        return {item["key"]: item["value"] for item in value}
    return value


_OWN_FIELDS = {
    "name",
    "flavor",
    "platform",
    "backend",
    "input",
    "output",
    "max_batch_size",
    "dynamic_batching",
    "instance_group",
    "version_policy",
    "parameters",
    "labels",
    "default_model_filename",
    "ensemble_scheduling",
}


ENSEMBLE_PLATFORM = "ensemble"
"""Triton's ``platform`` of an ensemble; modelport names its flavor the same."""

LATEST_VERSION = -1
"""A step's ``model_version`` that means "the highest loaded version", Triton's default."""


TensorMap = Annotated[dict[Text, Text], BeforeValidator(_parameter_entries)]


class EnsembleStep(Extensible):
    """One step of an ensemble: a composing model and which ensemble tensors it reads and writes.

    ``input_map`` maps the composing model's input names to ensemble tensor names, ``output_map``
    its output names to ensemble tensor names, as in Triton. ``model_version`` -1 is the highest
    version loaded when the request runs.
    """

    kept_keys = field_names("ModelEnsembling.Step") - {"model_name", "model_version", "input_map", "output_map"}

    model_name: Text
    model_version: Annotated[Int, Field(ge=LATEST_VERSION)] = LATEST_VERSION
    input_map: TensorMap
    output_map: TensorMap

    @field_validator("model_version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value == 0:
            raise ValueError("0 is not a version; use -1 (the latest) or a version number")
        return value

    @field_validator("input_map", "output_map")
    @classmethod
    def _not_empty(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("must map at least one tensor")
        return value

    def to_dict(self) -> dict[str, Any]:
        rendered = {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "input_map": dict(self.input_map),
            "output_map": dict(self.output_map),
        }
        return {**rendered, **self.extra}


class EnsembleScheduling(Extensible):
    """Triton's ``ensemble_scheduling``: the steps whose tensors make up an ensemble's graph.

    Only the steps' own fields are checked here; whether they form a graph that runs (every
    tensor produced once, used, no cycle) and fit their composing models is
    ``runtime.ensemble``'s, which needs those models' completed configs."""

    kept_keys = field_names("ModelEnsembling") - {"step"}

    steps: Annotated[list[EnsembleStep], BeforeValidator(_repeated), Field(min_length=1)] = Field(alias="step")

    def to_dict(self) -> dict[str, Any]:
        return {"step": [step.to_dict() for step in self.steps], **self.extra}


def _without_default(schema: JsonDict) -> None:
    """The schema describes the document as written: the default policy's flattened fields are
    not the one-key form a document takes, so the schema shows no default."""
    schema.pop("default")


class ModelConfig(Extensible):
    """A model's serving configuration (Triton ``ModelConfig`` subset + modelport fields).

    ``flavor`` is modelport's loader name (``onnx``, ``sklearn``...); when absent it is derived
    from Triton's ``platform``/``backend``, and those are derived from it, so either style of
    config names the same thing. ``labels`` is the label file for classification outputs that
    do not name their own ``label_filename``.
    """

    kept_keys = field_names("ModelConfig") - _OWN_FIELDS

    name: str
    flavor: Text | None = None
    platform: Text | None = None
    backend: Text | None = None
    inputs: Annotated[list[TensorConfig], BeforeValidator(_repeated)] = Field([], alias="input")
    outputs: Annotated[list[TensorConfig], BeforeValidator(_repeated)] = Field([], alias="output")
    max_batch_size: Count = 0
    dynamic_batching: DynamicBatching | None = None
    instance_group: Annotated[list[InstanceGroup], BeforeValidator(_repeated)] = [InstanceGroup()]
    version_policy: VersionPolicy = Field(VersionPolicy(), json_schema_extra=_without_default)
    parameters: Annotated[
        dict[str, Annotated[str, BeforeValidator(_parameter_text)]], BeforeValidator(_parameter_entries)
    ] = {}
    labels: Text | None = None
    default_model_filename: Text | None = None
    ensemble_scheduling: EnsembleScheduling | None = None

    @classmethod
    def _document(cls, data: dict[str, Any]) -> dict[str, Any]:
        _either(data, "input", "inputs")
        _either(data, "output", "outputs")
        for key in ("flavor", "platform", "backend", "labels", "default_model_filename"):
            if data.get(key) == "":  # Triton's JSON prints unset strings as ""
                del data[key]
        if ENSEMBLE_PLATFORM in (data.get("platform"), data.get("flavor")):
            _ensemble_document(data)
        return super()._document(data)

    @property
    def is_ensemble(self) -> bool:
        return self.platform == ENSEMBLE_PLATFORM

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return validate_name(value, "name")
        except ValidationError as exc:
            raise ValueError(str(exc).removeprefix("name: ")) from None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for kind, tensors in (("input", self.inputs), ("output", self.outputs)):
            seen: set[str] = set()
            for index, tensor in enumerate(tensors):
                if tensor.name in seen:
                    raise ValueError(f"{kind}[{index}].name: {tensor.name!r} appears twice")
                seen.add(tensor.name)
        if self.max_batch_size and self.dynamic_batching:
            for size in self.dynamic_batching.preferred_batch_size:
                if size > self.max_batch_size:
                    raise ValueError(
                        f"dynamic_batching.preferred_batch_size: {size} exceeds max_batch_size {self.max_batch_size}"
                    )
        if ENSEMBLE_PLATFORM in (self.platform, self.flavor):
            return self._ensemble()
        if self.ensemble_scheduling is not None:
            raise ValueError(f"ensemble_scheduling: only an ensemble has steps; set platform: {ENSEMBLE_PLATFORM}")
        if not self.instance_group:
            raise ValueError("instance_group: must list at least one group")
        # Derived names are set in place: the object is not visible to anyone before this returns.
        if self.flavor is None:
            object.__setattr__(self, "flavor", self._derived_flavor())
        if self.platform is None and self.backend is None and self.flavor is not None:
            platform, backend = _names.triton_names(self.flavor)
            object.__setattr__(self, "platform", platform)
            object.__setattr__(self, "backend", backend)
        return self

    def _ensemble(self) -> Self:
        """An ensemble runs no instances of its own: Triton names it by ``platform`` and gives it
        no instance groups; its steps and tensors are all it has."""
        if self.ensemble_scheduling is None:
            raise ValueError("ensemble_scheduling: an ensemble needs its steps")
        if self.dynamic_batching is not None:
            raise ValueError("dynamic_batching: an ensemble does not batch; its steps' models do")
        for kind, tensors in (("input", self.inputs), ("output", self.outputs)):
            if not tensors:
                raise ValueError(f"{kind}: an ensemble must declare its {kind}s")
        for name, value in (("platform", self.platform), ("flavor", self.flavor)):
            if value not in (None, ENSEMBLE_PLATFORM):
                raise ValueError(f"{name}: {value!r}, but the model is an ensemble")
        object.__setattr__(self, "platform", ENSEMBLE_PLATFORM)
        object.__setattr__(self, "flavor", ENSEMBLE_PLATFORM)
        object.__setattr__(self, "backend", None)
        object.__setattr__(self, "instance_group", [])
        return self

    def _derived_flavor(self) -> str | None:
        return _names.flavor_of_triton(self.platform, self.backend, self.parameters.get("model_type"))

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
        if self.ensemble_scheduling is not None:
            rendered["ensemble_scheduling"] = self.ensemble_scheduling.to_dict()
        if self.parameters:
            rendered["parameters"] = {k: {"string_value": v} for k, v in self.parameters.items()}
        if self.labels:
            rendered["labels"] = self.labels
        if self.default_model_filename:
            rendered["default_model_filename"] = self.default_model_filename
        return {**rendered, **self.extra}


def _ensemble_document(data: dict[str, Any]) -> None:
    """Triton refuses instance groups on an ensemble; an empty list (what ``to_dict`` renders) is none."""
    if data.get("instance_group"):
        raise ValueError("instance_group: an ensemble runs no instances of its own; its steps' models do")
    data.pop("instance_group", None)


def config_from_dict(data: object, source: str = "config", *, default_name: str | None = None) -> ModelConfig:
    """Build a config from parsed YAML, parsed protobuf text or Triton's JSON config.

    Repeated fields may be given once without brackets (protobuf text allows that), and both
    Triton (``input``, ``data_type``) and plural (``inputs``, ``datatype``) spellings work.
    """
    if isinstance(data, Mapping) and default_name is not None and not data.get("name"):
        data = {**data, "name": default_name}
    try:
        return parse(ModelConfig, data).value
    except ValidationError as exc:
        raise ValidationError(f"{source}: {exc}") from None


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
        result[key] = _merged(current, value) if isinstance(current, Mapping) and isinstance(value, Mapping) else value
    return result
