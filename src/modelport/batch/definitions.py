"""Batch endpoint and batch deployment definitions: Azure ML CLI v2 YAML in, checked values out.

Azure's YAML loads unchanged: settings may sit at the deployment's root (the legacy schema)
or under ``settings:``, with Azure's defaults; keys that only mean something in the cloud
(``compute``, ``environment.image``...) are accepted and listed as ignored, so a user sees what
was dropped; ``$schema`` at the top (a reference for editors) is accepted silently; any other
unknown key is an error naming its path, as Azure's SDK schemas (``unknown=RAISE``) do. Paths
in a file are relative to that file's folder.
Nothing here touches the database: :mod:`modelport.batch.endpoints` stores the results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelport.core.errors import ValidationError
from modelport.core.names import validate_name
from modelport.core.overrides import parse_override

OUTPUT_ACTIONS = ("append_row", "summary_only")
ENGINES = ("local", "ray")  # where a job's workers run; defined here so that the CLI's --engine loads no database code
LOGGING_LEVELS = ("debug", "info", "warning", "error", "critical")

SCHEMA_KEY = "$schema"  # the file's JSON schema: tells editors what the file is, means nothing here

_ENDPOINT_KEYS = {"name", "description", "tags", "defaults", SCHEMA_KEY}
_ENDPOINT_CLOUD_KEYS = {"auth_mode", "properties", "identity"}

_DEPLOYMENT_KEYS = {
    "name",
    "endpoint_name",
    "description",
    "tags",
    "type",
    "model",
    "code_configuration",
    "environment",
    "resources",
    "settings",
    SCHEMA_KEY,
}
_DEPLOYMENT_CLOUD_KEYS = {"compute", "properties", "job_definition"}
_RESOURCE_KEYS = {"instance_count"}
_RESOURCE_CLOUD_KEYS = {"instance_type", "properties", "shm_size"}
_CODE_KEYS = {"code", "scoring_script"}
_MODEL_KEYS = {"name", "version", "path", "description", "tags", "type"}
_MODEL_CLOUD_KEYS = {"properties", "datastore", "stage", "job_name"}
_ENVIRONMENT_KEYS = {"name", "version", "conda_file", "description", "tags"}
_ENVIRONMENT_CLOUD_KEYS = {"image", "build", "os_type", "inference_config", "properties", "datastore"}
_RETRY_KEYS = {"max_retries", "timeout"}


@dataclass(frozen=True)
class BatchSettings:
    """How a deployment's jobs run, with Azure ML's defaults (azureml-compat.md §3.1)."""

    instance_count: int = 1
    max_concurrency_per_instance: int = 1
    mini_batch_size: int = 10
    output_action: str = "append_row"
    output_file_name: str = "predictions.csv"
    max_retries: int = 3
    timeout: float = 30.0
    error_threshold: int = -1
    logging_level: str = "info"
    environment_variables: dict[str, str] = field(default_factory=dict)

    @property
    def workers(self) -> int:
        return self.instance_count * self.max_concurrency_per_instance

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchSettings:
        return cls(**data)

    def override(self, values: Mapping[str, Any], where: str = "--set") -> BatchSettings:
        """These settings with ``values`` (flat setting names, e.g. from ``invoke --set``) applied."""
        known = {f.name for f in dataclasses.fields(self)} - {"environment_variables"}
        checked = {}
        for key, value in values.items():
            if key not in known:
                raise ValidationError(f"{where} {key}: not a batch setting (use one of {', '.join(sorted(known))})")
            checked[key] = check_setting(key, value, f"{where} {key}")
        return dataclasses.replace(self, **checked)


def check_setting(key: str, value: Any, where: str) -> Any:
    """One setting's value, checked and normalised; ``where`` names it in the error."""
    if key in ("instance_count", "max_concurrency_per_instance", "mini_batch_size"):
        return _int(value, where, minimum=1)
    if key == "max_retries":
        return _int(value, where, minimum=0)
    if key == "error_threshold":
        return _int(value, where, minimum=-1)
    if key == "timeout":
        number = _number(value, where)
        if number <= 0:
            raise ValidationError(f"{where}: {value!r} must be a positive number of seconds")
        return number
    if key == "output_action":
        return _choice(value, OUTPUT_ACTIONS, where)
    if key == "logging_level":
        return _choice(str(value).lower(), LOGGING_LEVELS, where)
    if key == "output_file_name":
        if not isinstance(value, str) or "/" in value or "\\" in value:
            raise ValidationError(f"{where}: {value!r} must be a file name, not a path")
        return validate_name(value, where)
    if key == "environment_variables":
        if not isinstance(value, Mapping):
            raise ValidationError(f"{where}: must be a mapping of names to values")
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    raise AssertionError(key)


def _int(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{where}: {value!r} is not an integer")
    if value < minimum:
        what = {1: "a positive integer", 0: "0 or more", -1: "-1 (never abort) or more"}[minimum]
        raise ValidationError(f"{where}: {value} must be {what}")
    return value


def _number(value: Any, where: str) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: {value!r} is not a number") from None


def _choice(value: Any, choices: Sequence[str], where: str) -> str:
    if value not in choices:
        raise ValidationError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return str(value)


@dataclass(frozen=True)
class EndpointDefinition:
    name: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    default_deployment: str | None = None
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeploymentDefinition:
    """A batch deployment as written: ``model`` is a reference (``NAME[:V|@A]``) or an inline
    ``{path, name?, version?, description?, tags?}``; ``environment`` likewise; paths are absolute."""

    name: str
    endpoint_name: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    model: str | dict[str, Any] | None = None
    code: str | None = None
    scoring_script: str | None = None
    environment: str | dict[str, Any] | None = None
    settings: BatchSettings = field(default_factory=BatchSettings)
    ignored: tuple[str, ...] = ()


# -- reading files -----------------------------------------------------------------------------


def read_definition(
    file: str | Path | None, overrides: Sequence[str] = (), name: str | None = None
) -> tuple[dict[str, Any], Path]:
    """The YAML mapping in ``file`` (empty when None) with ``--set key.path=value`` applied,
    and the folder its relative paths start from."""
    data: dict[str, Any] = {}
    base = Path.cwd()
    if file is not None:
        path = Path(file)
        try:
            loaded = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ValidationError(f"--file: {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationError(f"--file: cannot read {path} ({exc})") from None
        except yaml.YAMLError as exc:
            raise ValidationError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ValidationError(f"{path}: expected a YAML mapping at the top, got {type(loaded).__name__}")
        data = loaded or {}
        base = path.absolute().parent
    for item in overrides:
        path, value = parse_override(item)
        _set_path(data, path, value, item)
    if name is not None:
        data["name"] = name
    return data, base


def _set_path(data: dict[str, Any], keys: list[str], value: Any, item: str) -> None:
    for key in keys[:-1]:
        child = data.setdefault(key, {})
        if not isinstance(child, dict):
            raise ValidationError(f"--set {item}: {key} is not a mapping")
        data = child
    data[keys[-1]] = value


# -- endpoints ---------------------------------------------------------------------------------


def parse_endpoint(data: Mapping[str, Any]) -> EndpointDefinition:
    ignored: list[str] = []
    _check_keys(data, _ENDPOINT_KEYS, _ENDPOINT_CLOUD_KEYS, "", ignored)
    defaults = _mapping(data.get("defaults"), "defaults")
    _check_keys(defaults, {"deployment_name"}, set(), "defaults.", ignored)
    default = defaults.get("deployment_name")
    return EndpointDefinition(
        name=validate_name(_required(data, "name", ""), "name"),
        description=_text(data.get("description"), "description"),
        tags=_tags(data.get("tags"), "tags"),
        default_deployment=None if default is None else validate_name(str(default), "defaults.deployment_name"),
        ignored=tuple(ignored),
    )


# -- deployments -------------------------------------------------------------------------------

# Names under ``settings:`` (or at a legacy root); retries and timeout sit in ``retry_settings``.
_SETTING_KEYS = {f.name for f in dataclasses.fields(BatchSettings)} - _RETRY_KEYS - {"instance_count"} | {
    "retry_settings"
}


def parse_deployment(data: Mapping[str, Any], base: Path) -> DeploymentDefinition:
    ignored: list[str] = []
    kind = data.get("type", "model")
    if kind != "model":
        raise ValidationError(f"type: {kind!r} deployments are not supported; use type: model")
    _check_keys(data, _DEPLOYMENT_KEYS | _SETTING_KEYS, _DEPLOYMENT_CLOUD_KEYS, "", ignored)
    code, script = _code(data.get("code_configuration"), base, ignored)
    model = _asset(data.get("model"), "model", _MODEL_KEYS, _MODEL_CLOUD_KEYS, base, "path", ignored)
    environment = _asset(
        data.get("environment"),
        "environment",
        _ENVIRONMENT_KEYS,
        _ENVIRONMENT_CLOUD_KEYS,
        base,
        "conda_file",
        ignored,
    )
    if model is None and code is None:
        raise ValidationError("model: a deployment needs a model, a code_configuration, or both")
    return DeploymentDefinition(
        name=validate_name(_required(data, "name", ""), "name"),
        endpoint_name=validate_name(_required(data, "endpoint_name", ""), "endpoint_name"),
        description=_text(data.get("description"), "description"),
        tags=_tags(data.get("tags"), "tags"),
        model=model,
        code=code,
        scoring_script=script,
        environment=environment,
        settings=_settings(data, ignored),
        ignored=tuple(ignored),
    )


def _settings(data: Mapping[str, Any], ignored: list[str]) -> BatchSettings:
    """Settings from ``settings:`` and from the root (legacy); the same key in both is an error."""
    nested = _mapping(data.get("settings"), "settings")
    _check_keys(nested, _SETTING_KEYS, set(), "settings.", ignored)
    values: dict[str, Any] = {}
    for prefix, source in (("", data), ("settings.", nested)):
        for key in _SETTING_KEYS & set(source):
            if key in values:
                raise ValidationError(f"settings.{key}: given both at the root and under settings")
            if key == "retry_settings":
                retry = _mapping(source[key], f"{prefix}retry_settings")
                _check_keys(retry, _RETRY_KEYS, set(), f"{prefix}retry_settings.", ignored)
                for sub, value in retry.items():
                    values[sub] = check_setting(sub, value, f"{prefix}retry_settings.{sub}")
                values[key] = True  # marks the key as seen for the both-places check
            else:
                values[key] = check_setting(key, source[key], f"{prefix}{key}")
    values.pop("retry_settings", None)
    resources = _mapping(data.get("resources"), "resources")
    _check_keys(resources, _RESOURCE_KEYS, _RESOURCE_CLOUD_KEYS, "resources.", ignored)
    if "instance_count" in resources:
        values["instance_count"] = check_setting(
            "instance_count", resources["instance_count"], "resources.instance_count"
        )
    return BatchSettings(**values)


def _code(value: Any, base: Path, ignored: list[str]) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    config = _mapping(value, "code_configuration")
    _check_keys(config, _CODE_KEYS, set(), "code_configuration.", ignored)
    code = base / str(_required(config, "code", "code_configuration."))
    script = str(_required(config, "scoring_script", "code_configuration."))
    if not code.is_dir():
        raise ValidationError(f"code_configuration.code: {code} is not a folder")
    if not (code / script).is_file():
        raise ValidationError(f"code_configuration.scoring_script: {code / script} does not exist")
    return str(code.resolve()), script


def _asset(
    value: Any,
    field_name: str,
    keys: set[str],
    cloud_keys: set[str],
    base: Path,
    path_key: str,
    ignored: list[str],
) -> str | dict[str, Any] | None:
    """A model or environment: a reference string, or an inline mapping whose file path is made
    absolute and checked to exist."""
    if value is None or isinstance(value, str):
        return value
    inline = dict(_mapping(value, field_name))
    _check_keys(inline, keys, cloud_keys, f"{field_name}.", ignored)
    for key in cloud_keys:
        inline.pop(key, None)
    if path_key in inline:
        path = base / str(inline[path_key])
        if not path.exists():
            raise ValidationError(f"{field_name}.{path_key}: {path} does not exist")
        inline[path_key] = str(path.resolve())
    return inline


# -- small checks ------------------------------------------------------------------------------


def _check_keys(data: Mapping[str, Any], keys: set[str], cloud_keys: set[str], prefix: str, ignored: list[str]) -> None:
    for key in data:
        if key in cloud_keys:
            ignored.append(f"{prefix}{key}")
        elif key not in keys:
            raise ValidationError(f"{prefix}{key}: unknown key (allowed: {', '.join(sorted(keys | cloud_keys))})")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _required(data: Mapping[str, Any], key: str, prefix: str) -> Any:
    if data.get(key) in (None, ""):
        raise ValidationError(f"{prefix}{key}: required")
    return data[key]


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)):
        raise ValidationError(f"{where}: expected text")
    return str(value)


def _tags(value: Any, where: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in _mapping(value, where).items()}
