"""Online endpoint and deployment definitions: Azure ML CLI v2 YAML in, checked dataclasses out.

Each definition is a tree of frozen dataclasses whose fields *are* the YAML keys and whose
defaults are Azure's (azureml-compat.md §2.1–2.2), so reading a file is one generic walk:
a key that names a field is checked by that field's ``check``; a key in the class's
``cloud_keys`` (``instance_type``, ``identity``...) is accepted and reported as ignored, since it
only means something in Azure; ``$schema`` at the top is a reference for editors, accepted
silently; anything else is an error naming its path, as the SDK's ``unknown=RAISE`` schemas do. Relative paths are taken from the file's folder.

Nothing here touches the database: :mod:`modelport.control.catalog` resolves references and
stores the results; :func:`check_routing` holds the traffic rules both use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from modelport.batch.definitions import SCHEMA_KEY
from modelport.core.errors import ValidationError
from modelport.core.names import validate_name
from modelport.core.overrides import parse_override
from modelport.monitor.collector import COLLECTIONS, FORMATS, ROLLING_RATES
from modelport.runtime.config import override_config
from modelport.runtime.fields import (
    FieldError,
    as_bool,
    as_int,
    as_mapping,
    as_positive_float,
    as_text,
    at,
    describe,
)

AUTH_MODES = ("key", "none")
MAX_REQUEST_TIMEOUT_MS = 180_000
MAX_MIRROR_PERCENT = 50

Check = Callable[[Any, "_Walk"], Any]


def _field(default: Any, check: Check | None = None, nested: type[Any] | None = None) -> Any:
    """A definition field: its Azure default, the check that turns a YAML scalar into its value,
    and the definition class a YAML mapping under it is read as."""
    metadata = {"check": check, "nested": nested}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class _Walk:
    """One file's walk: the folder its relative paths start from and the ignored key paths.
    A ``stored`` walk re-reads a definition that was checked when it was saved: its paths are
    not checked again, so a damaged snapshot shows up when a replica starts, not on every read."""

    base: Path
    stored: bool = False
    ignored: list[str] = field(default_factory=list)

    def build(self, cls: type[Any], data: Any, prefix: str = "") -> Any:
        """``cls`` from the mapping ``data``; errors raised inside name the key path."""
        data = as_mapping(data)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for key, value in data.items():
            if key == SCHEMA_KEY and not prefix:
                continue
            if key in cls.cloud_keys:
                self.ignored.append(prefix + key)
            elif key not in fields:
                allowed = ", ".join(sorted(fields.keys() | cls.cloud_keys))
                raise FieldError(str(key), f"unknown key (allowed: {allowed})")
            elif value is not None:
                with at(key):
                    values[key] = self._value(fields[key].metadata, value, f"{prefix}{key}.")
        missing = [name for name, f in fields.items() if _required(f) and name not in values]
        if missing:
            raise FieldError(missing[0], "required")
        return cls(**values)

    def _value(self, metadata: Mapping[str, Any], value: Any, prefix: str) -> Any:
        if metadata["nested"] is not None and (metadata["check"] is None or isinstance(value, Mapping)):
            return self.build(metadata["nested"], value, prefix)
        return metadata["check"](value, self)


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


# -- field checks ------------------------------------------------------------------------------


def _name(value: Any, walk: _Walk | None = None) -> str:
    try:
        return validate_name(as_text(value), "name")
    except ValidationError as exc:  # the enclosing ``at`` names the field
        raise ValidationError(str(exc).removeprefix("name: ")) from None


def _text(value: Any, walk: _Walk) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValidationError(f"expected text, got {describe(value)}")
    return str(value)


def _strings(value: Any, walk: _Walk) -> dict[str, str]:
    """Tags and environment variables: a flat mapping, values as strings (null is empty)."""
    result = {}
    for key, item in as_mapping(value).items():
        if isinstance(item, (dict, list)):
            raise ValidationError(f"{key}: expected a string, number or boolean, got {describe(item)}")
        result[str(key)] = "" if item is None else str(item).lower() if isinstance(item, bool) else str(item)
    return result


def _count(value: Any, walk: _Walk) -> int:
    return as_int(value, minimum=1)


def _seconds(value: Any, walk: _Walk) -> float:
    return as_positive_float(value)


def _delay(value: Any, walk: _Walk) -> float:
    return 0.0 if value == 0 else as_positive_float(value)


def _timeout_ms(value: Any, walk: _Walk) -> int:
    value = as_int(value, minimum=1)
    if value > MAX_REQUEST_TIMEOUT_MS:
        raise ValidationError(f"{value} is more than the {MAX_REQUEST_TIMEOUT_MS} ms allowed")
    return value


def _auth_mode(value: Any, walk: _Walk) -> str:
    mode = as_text(value).lower()
    if mode not in AUTH_MODES:
        raise ValidationError(f"{value!r} is not available locally; use {' or '.join(AUTH_MODES)}")
    return mode


def _percentages(value: Any, walk: _Walk) -> dict[str, int]:
    result = {}
    for name, weight in as_mapping(value).items():
        with at(str(name)):
            weight = as_int(weight, minimum=0)
            if weight > 100:
                raise ValidationError(f"{weight} is more than 100")
            result[_name(str(name))] = weight
    return result


def _folder(value: Any, walk: _Walk) -> str:
    path = walk.base / as_text(str(value))
    if not (walk.stored or path.is_dir()):
        raise ValidationError(f"{path} is not a folder")
    return str(path.resolve())


def _existing_path(value: Any, walk: _Walk) -> str:
    path = walk.base / as_text(str(value))
    if not (walk.stored or path.exists()):
        raise ValidationError(f"{path} does not exist")
    return str(path.resolve())


def _reference(value: Any, walk: _Walk) -> str:
    """A model or environment reference: ``NAME``, ``NAME:V``, ``NAME@A`` (``azureml:`` allowed);
    checked against the registry when the deployment is stored."""
    if not isinstance(value, str):
        raise ValidationError(f"expected a reference or a mapping, got {describe(value)}")
    return as_text(value.strip())


def _model_config(value: Any, walk: _Walk) -> dict[str, Any]:
    """Triton config fields laid over the model's own (``max_batch_size``, ``dynamic_batching``,
    ``instance_group``...): checked here by building a config from them, kept as given."""
    fields = dict(as_mapping(value))
    try:
        override_config(None, "check", fields, "model_config")
    except ValidationError as exc:  # the enclosing ``at`` names the field
        raise ValidationError(str(exc).removeprefix("model_config: ")) from None
    return fields


def _flag(value: Any, walk: _Walk) -> bool:
    """Azure's YAML writes ``enabled: 'True'``; real booleans work too."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return as_bool(value)


def _rate(value: Any, walk: _Walk) -> float:
    rate = as_positive_float(value)
    if rate > 1:
        raise ValidationError(f"{value} is more than 1 (a fraction of requests: 0.1 collects one in ten)")
    return rate


def _one_of(*choices: str) -> Check:
    def check(value: Any, walk: _Walk) -> str:
        text = as_text(str(value)).lower()
        if text not in choices:
            raise ValidationError(f"{value!r} is not one of {', '.join(choices)}")
        return text

    return check


# -- endpoint ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointSpec:
    """``endpoint.yml``: a stable name, its keys' mode and how requests split over deployments."""

    cloud_keys: ClassVar[frozenset[str]] = frozenset(
        {"compute", "identity", "public_network_access", "properties", "kind", "location"}
    )

    name: str = _field(dataclasses.MISSING, _name)
    description: str = _field("", _text)
    tags: dict[str, str] = _field({}, _strings)
    auth_mode: str = _field("key", _auth_mode)
    traffic: dict[str, int] = _field({}, _percentages)
    mirror_traffic: dict[str, int] = _field({}, _percentages)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- deployment --------------------------------------------------------------------------------


@dataclass(frozen=True)
class InlineModel:
    """``model: {path: ...}``: files registered as a model version when the deployment is made."""

    cloud_keys: ClassVar[frozenset[str]] = frozenset({"type", "properties", "datastore", "stage", "job_name"})

    path: str = _field(dataclasses.MISSING, _existing_path)
    name: str | None = _field(None, _name)
    description: str = _field("", _text)
    tags: dict[str, str] = _field({}, _strings)


@dataclass(frozen=True)
class InlineEnvironment:
    """``environment: {conda_file: ...}``: registered as an environment version, built into a venv."""

    cloud_keys: ClassVar[frozenset[str]] = frozenset(
        {"image", "build", "os_type", "inference_config", "properties", "datastore", "version"}
    )

    conda_file: str = _field(dataclasses.MISSING, _existing_path)
    name: str | None = _field(None, _name)
    description: str = _field("", _text)
    tags: dict[str, str] = _field({}, _strings)


@dataclass(frozen=True)
class CodeConfiguration:
    cloud_keys: ClassVar[frozenset[str]] = frozenset()

    code: str = _field(dataclasses.MISSING, _folder)
    scoring_script: str = _field(dataclasses.MISSING, lambda value, walk: as_text(str(value)))

    @property
    def script_path(self) -> Path:
        return Path(self.code) / self.scoring_script


@dataclass(frozen=True)
class RequestSettings:
    """Enforced by the router: 408 past the timeout, 429 beyond ``2 × max_concurrent × instances``."""

    cloud_keys: ClassVar[frozenset[str]] = frozenset()

    request_timeout_ms: int = _field(5000, _timeout_ms)
    max_concurrent_requests_per_instance: int = _field(1, _count)
    max_queue_wait_ms: int = _field(500, lambda value, walk: as_int(value, minimum=0))  # deprecated in Azure too


@dataclass(frozen=True)
class Probe:
    """Liveness (failing → restart) or readiness (failing → out of rotation), in seconds."""

    cloud_keys: ClassVar[frozenset[str]] = frozenset()

    initial_delay: float = _field(10, _delay)
    period: float = _field(10, _seconds)
    timeout: float = _field(2, _seconds)
    success_threshold: int = _field(1, _count)
    failure_threshold: int = _field(30, _count)


@dataclass(frozen=True)
class Collection:
    cloud_keys: ClassVar[frozenset[str]] = frozenset({"data", "client_id"})

    enabled: bool = _field(False, _flag)


def _collections(value: Any, walk: _Walk) -> dict[str, Collection]:
    result = {}
    for name, item in as_mapping(value).items():
        with at(str(name)):
            if name not in COLLECTIONS:
                raise ValidationError(f"unknown collection; modelport collects {' and '.join(COLLECTIONS)}")
            result[name] = walk.build(
                Collection, item if item is not None else {}, f"data_collector.collections.{name}."
            )
    return result


@dataclass(frozen=True)
class DataCollector:
    """``data_collector``: which payloads are kept (``collections.<name>.enabled``), for what
    share of requests, in which file format and how often files roll over (Azure's defaults)."""

    cloud_keys: ClassVar[frozenset[str]] = frozenset({"request_logging", "destination"})

    collections: dict[str, Collection] = _field({}, _collections)
    sampling_rate: float = _field(1.0, _rate)
    rolling_rate: str = _field("hour", _one_of(*ROLLING_RATES))
    format: str = _field("parquet", _one_of(*FORMATS))

    @property
    def enabled(self) -> list[str]:
        return [name for name, collection in self.collections.items() if collection.enabled]


@dataclass(frozen=True)
class DeploymentSpec:
    """``deployment.yml``: a model version + scoring code + environment + replicas and their settings."""

    cloud_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "type",
            "instance_type",
            "app_insights_enabled",
            "scale_settings",
            "egress_public_network_access",
            "private_network_connection",
            "resources",
            "properties",
            "model_mount_path",
            "startup_probe",
            "with_package",
        }
    )

    name: str = _field(dataclasses.MISSING, _name)
    endpoint_name: str = _field(dataclasses.MISSING, _name)
    description: str = _field("", _text)
    tags: dict[str, str] = _field({}, _strings)
    model: str | InlineModel | None = _field(None, _reference, InlineModel)
    code_configuration: CodeConfiguration | None = _field(None, nested=CodeConfiguration)
    environment: str | InlineEnvironment | None = _field(None, _reference, InlineEnvironment)
    instance_count: int = _field(1, _count)
    request_settings: RequestSettings = _field(RequestSettings(), nested=RequestSettings)
    liveness_probe: Probe = _field(Probe(), nested=Probe)
    readiness_probe: Probe = _field(Probe(), nested=Probe)
    environment_variables: dict[str, str] = _field({}, _strings)
    model_config: dict[str, Any] = _field({}, _model_config)
    data_collector: DataCollector = _field(DataCollector(), nested=DataCollector)

    @property
    def max_in_flight(self) -> int:
        """Requests in flight beyond which the router answers 429 (Azure's gateway rule)."""
        return 2 * self.request_settings.max_concurrent_requests_per_instance * self.instance_count

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- reading -----------------------------------------------------------------------------------


def parse_endpoint(data: Mapping[str, Any]) -> tuple[EndpointSpec, list[str]]:
    """The endpoint and the ignored (cloud-only) key paths."""
    return _parse(EndpointSpec, data, Path.cwd())


def parse_deployment(data: Mapping[str, Any], base: Path) -> tuple[DeploymentSpec, list[str]]:
    """The deployment and the ignored key paths; paths in ``data`` are relative to ``base``.
    The scoring script must exist: a deployment that cannot start is refused here."""
    spec, ignored = _parse(DeploymentSpec, data, base)
    if spec.model is None and spec.code_configuration is None:
        raise ValidationError("model: a deployment needs a model, a code_configuration, or both")
    if spec.model_config and spec.code_configuration is not None:
        raise ValidationError("model_config: tunes a no-code model's server; a scoring script's deployment has none")
    if spec.code_configuration is not None and not spec.code_configuration.script_path.is_file():
        raise ValidationError(
            f"code_configuration.scoring_script: {spec.code_configuration.script_path} does not exist"
        )
    return spec, ignored


def parse_data_collector(data: Mapping[str, Any]) -> tuple[DataCollector, list[str]]:
    """A ``data_collector`` mapping on its own (``modelport serve --data-collector``)."""
    return _parse(DataCollector, data, Path.cwd())


def load_deployment(data: Mapping[str, Any]) -> DeploymentSpec:
    """A deployment as stored by :mod:`modelport.control.catalog` (``DeploymentSpec.to_dict``)."""
    return _Walk(Path("/"), stored=True).build(DeploymentSpec, data)


def _parse(cls: type[Any], data: Mapping[str, Any], base: Path) -> tuple[Any, list[str]]:
    walk = _Walk(base)
    return walk.build(cls, data), walk.ignored


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``data`` with each ``--set a.b.c=value`` applied; values are read as YAML
    (``--set instance_count=2`` is a number, ``--set traffic.blue=90`` too)."""
    result = _copy(data)
    for item in overrides:
        (*parents, leaf), value = parse_override(item)
        target = result
        for part in parents:
            if target.get(part) is None:
                target[part] = {}
            if not isinstance(target[part], dict):
                raise ValidationError(f"--set {item}: {part} is not a mapping")
            target = target[part]
        target[leaf] = value
    return result


def _copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _copy(value) if isinstance(value, Mapping) else value for key, value in data.items()}


# -- routing rules -----------------------------------------------------------------------------


def check_routing(endpoint: EndpointSpec, deployments: Sequence[str]) -> None:
    """Azure's rules (azureml-compat.md §2.3, §6.17–19): weights over existing deployments that
    sum to 100 or 0; at most one mirror, at most 50 %, never a deployment that is also live."""
    known = set(deployments)
    for key in ("traffic", "mirror_traffic"):
        for name in getattr(endpoint, key):
            if name not in known:
                raise ValidationError(f"{key}.{name}: endpoint {endpoint.name!r} has no deployment {name!r}")
    total = sum(endpoint.traffic.values())
    if total not in (0, 100):
        raise ValidationError(f"traffic: the weights sum to {total}; they must sum to 100 (or 0 for no live traffic)")
    mirrors = {name: pct for name, pct in endpoint.mirror_traffic.items() if pct > 0}
    if len(mirrors) > 1:
        raise ValidationError(f"mirror_traffic: one deployment at most, got {', '.join(sorted(mirrors))}")
    for name, pct in mirrors.items():
        if pct > MAX_MIRROR_PERCENT:
            raise ValidationError(f"mirror_traffic.{name}: {pct} % is more than the {MAX_MIRROR_PERCENT} % allowed")
        if endpoint.traffic.get(name, 0) > 0:
            raise ValidationError(
                f"mirror_traffic.{name}: {name!r} already gets {endpoint.traffic[name]} % of live traffic; "
                "a deployment is either live or mirrored"
            )
