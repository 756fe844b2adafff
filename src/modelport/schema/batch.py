"""Batch endpoint and batch deployment definitions, and the settings a deployment's jobs run with.

Azure's YAML loads unchanged: a deployment's settings may sit under ``settings:`` or at its
root (Azure's legacy schema), never both for one key; ``resources.instance_count`` and
``retry_settings`` fold into the flat :class:`BatchSettings` that deployments and jobs store.
Keys that only mean something in the cloud (``compute``, ``environment.image``...) are accepted
and reported as ignored. Paths are relative to the file's folder (``base`` in the parse context).
Nothing here touches the database: :mod:`modelport.batch.endpoints` stores the results.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, Tag, ValidationInfo, model_validator

from modelport.core.errors import ValidationError
from modelport.core.names import parse_version, validate_name
from modelport.schema.base import Definition, parse
from modelport.schema.choices import LoggingLevel, OutputAction
from modelport.schema.online import CodeConfiguration, InlineEnvironment, InlineModel, check_runnable
from modelport.schema.types import (
    REFERENCE,
    Count,
    Document,
    ExistingPath,
    Name,
    NonNegative,
    Seconds,
    Strings,
    Text,
    between,
    by_shape,
    describe,
    one_of,
)


def _file_name(value: object) -> str:
    if not isinstance(value, str) or "/" in value or "\\" in value:
        raise ValueError(f"{describe(value)} must be a file name, not a path")
    try:
        return validate_name(value)
    except ValidationError as exc:
        raise ValueError(str(exc).removeprefix("name: ")) from None


def _version(value: object) -> int:
    try:
        return parse_version(value)  # type: ignore[arg-type]  # refused below when not str or int
    except ValidationError as exc:
        raise ValueError(str(exc).removeprefix("version: ")) from None


FileName = Annotated[str, BeforeValidator(_file_name)]
Version = Annotated[int, BeforeValidator(_version)]
ErrorThreshold = Annotated[int, Field(ge=-1), between(-1)]  # -1: never abort, however many items fail
Action = Annotated[OutputAction, one_of(OutputAction)]
Level = Annotated[LoggingLevel, one_of(LoggingLevel)]


class BatchSettings(Definition):
    """How a deployment's jobs run, with Azure ML's defaults (azureml-compat.md §3.1): stored
    flat with the deployment and copied into each job, where ``invoke --set`` may change them."""

    instance_count: Count = 1
    max_concurrency_per_instance: Count = 1
    mini_batch_size: Count = 10
    output_action: Action = OutputAction.APPEND_ROW
    output_file_name: FileName = "predictions.csv"
    max_retries: NonNegative = 3
    timeout: Seconds = 30.0
    error_threshold: ErrorThreshold = -1
    logging_level: Level = LoggingLevel.INFO
    environment_variables: Strings = {}

    @property
    def workers(self) -> int:
        return self.instance_count * self.max_concurrency_per_instance

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchSettings:
        return parse(cls, data).value

    def override(self, values: Mapping[str, Any], where: str = "--set") -> BatchSettings:
        """These settings with ``values`` (flat setting names, e.g. from ``invoke --set``) applied."""
        known = set(BatchSettings.model_fields) - {"environment_variables"}
        for key in values:
            if key not in known:
                raise ValidationError(f"{where} {key}: not a batch setting (use one of {', '.join(sorted(known))})")
        try:
            return parse(BatchSettings, {**self.to_dict(), **values}).value
        except ValidationError as exc:
            raise ValidationError(f"{where} {exc}") from None


# -- endpoint ----------------------------------------------------------------------------------


class EndpointDefaults(Document):
    deployment_name: Name | None = None


class BatchEndpointSpec(Document):
    """``batch-endpoint.yml``: a name, and the deployment its jobs use unless told otherwise."""

    cloud_keys: ClassVar[frozenset[str]] = frozenset({"auth_mode", "properties", "identity"})

    name: Name
    description: Text = ""
    tags: Strings = {}
    defaults: EndpointDefaults = EndpointDefaults()

    @property
    def default_deployment(self) -> str | None:
        return self.defaults.deployment_name


# -- deployment --------------------------------------------------------------------------------


class BatchInlineModel(InlineModel):
    """An inline model; a batch deployment may also pin the version it is registered as."""

    version: Version | None = None


class BatchInlineEnvironment(InlineEnvironment):
    """An inline environment; one with only an ``image`` registers nothing locally."""

    conda_file: ExistingPath | None = None  # type: ignore[assignment]


ModelReference = Annotated[
    Annotated[str, Tag("str")] | Annotated[BatchInlineModel, Tag("BatchInlineModel")],
    by_shape("BatchInlineModel"),
    REFERENCE,
]
EnvironmentReference = Annotated[
    Annotated[str, Tag("str")] | Annotated[BatchInlineEnvironment, Tag("BatchInlineEnvironment")],
    by_shape("BatchInlineEnvironment"),
    REFERENCE,
]


class RetrySettings(Document):
    max_retries: NonNegative = 3
    timeout: Seconds = 30.0


class Resources(Document):
    cloud_keys: ClassVar[frozenset[str]] = frozenset({"instance_type", "properties", "shm_size"})

    instance_count: Count = 1


class JobSettings(Document):
    """``settings:`` of a batch deployment (and, in Azure's legacy schema, its root)."""

    max_concurrency_per_instance: Count = 1
    mini_batch_size: Count = 10
    output_action: Action = OutputAction.APPEND_ROW
    output_file_name: FileName = "predictions.csv"
    retry_settings: RetrySettings = RetrySettings()
    error_threshold: ErrorThreshold = -1
    logging_level: Level = LoggingLevel.INFO
    environment_variables: Strings = {}


def _model_type(value: object) -> object:
    if value != "model":
        raise ValueError(f"{describe(value)} deployments are not supported; use type: model")
    return value


class BatchDeploymentSpec(JobSettings):
    """``batch-deployment.yml``: model and/or scoring script, environment, and job settings
    (under ``settings:`` or, as Azure's legacy schema has them, at the root)."""

    cloud_keys: ClassVar[frozenset[str]] = frozenset({"compute", "properties", "job_definition"})
    unsupported_keys: ClassVar[Mapping[str, str]] = {
        "models": "the models a scoring script calls are loaded for online deployments only; "
        "a batch scoring script loads what it needs in init()"
    }

    name: Name
    endpoint_name: Name
    description: Text = ""
    tags: Strings = {}
    type: Annotated[Literal["model"], BeforeValidator(_model_type)] = "model"
    model: ModelReference | None = None
    code_configuration: CodeConfiguration | None = None
    environment: EnvironmentReference | None = None
    resources: Resources = Resources()
    settings: JobSettings = JobSettings()

    @model_validator(mode="after")
    def _checked(self, info: ValidationInfo) -> BatchDeploymentSpec:
        for key in JobSettings.model_fields:
            if key in self.model_fields_set and key in self.settings.model_fields_set:
                raise ValueError(f"settings.{key}: given both at the root and under settings")
        check_runnable(self.model, self.code_configuration, info)
        return self

    @property
    def batch_settings(self) -> BatchSettings:
        """The settings as stored: each from where it was given, else Azure's default."""
        given = {
            key: getattr(self if key in self.model_fields_set else self.settings, key)
            for key in JobSettings.model_fields
        }
        retry: RetrySettings = given.pop("retry_settings")
        return BatchSettings(
            instance_count=self.resources.instance_count,
            max_retries=retry.max_retries,
            timeout=retry.timeout,
            **given,
        )
