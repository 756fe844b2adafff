"""Online endpoint and deployment definitions: Azure ML CLI v2 YAML in, checked models out.

Each model's fields *are* the YAML keys and its defaults are Azure's (azureml-compat.md §2.1–2.2);
keys in ``cloud_keys`` (``instance_type``, ``identity``...) are accepted and reported as ignored.
Relative paths are taken from the file's folder (``base`` in the parse context); a definition
read back from the database (``stored`` in the context) has its paths taken as they are.
Nothing here touches the database: :mod:`modelport.control.catalog` resolves references and
stores :meth:`DeploymentSpec.to_dict`, which :func:`modelport.control.definitions.load_deployment`
reads back to an equal model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BeforeValidator, Field, Tag, ValidationInfo, model_validator

from modelport.core.errors import ValidationError
from modelport.core.names import parse_ref
from modelport.schema.choices import AuthMode, ScaleType
from modelport.schema.collector import DataCollector
from modelport.schema.model_config import override_config
from modelport.schema.types import (
    REFERENCE,
    Count,
    Delay,
    Document,
    ExistingPath,
    Folder,
    Name,
    NameKey,
    NonEmpty,
    NonNegative,
    Seconds,
    Strings,
    Text,
    between,
    by_shape,
    describe,
    one_of,
    scalar_text,
)

MAX_REQUEST_TIMEOUT_MS = 180_000
MAX_MIRROR_PERCENT = 50


def _local_auth_only(value: object) -> str:
    return f"{describe(value)} is not available locally; use {' or '.join(mode.value for mode in AuthMode)}"


Percentages = dict[NameKey, Annotated[int, Field(ge=0, le=100), between(0, 100)]]  # deployment → share


class EndpointSpec(Document):
    """``endpoint.yml``: a stable name, its keys' mode and how requests split over deployments."""

    cloud_keys: ClassVar[frozenset[str]] = frozenset(
        {"compute", "identity", "public_network_access", "properties", "kind", "location"}
    )

    name: Name
    description: Text = ""
    tags: Strings = {}
    auth_mode: Annotated[AuthMode, one_of(AuthMode, _local_auth_only)] = AuthMode.KEY
    traffic: Percentages = {}
    mirror_traffic: Percentages = {}

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# -- deployment --------------------------------------------------------------------------------


class InlineModel(Document):
    """``model: {path: ...}``: files registered as a model version when the deployment is made."""

    cloud_keys: ClassVar[frozenset[str]] = frozenset({"type", "properties", "datastore", "stage", "job_name"})

    path: ExistingPath
    name: Name | None = None
    description: Text = ""
    tags: Strings = {}


class InlineEnvironment(Document):
    """``environment: {conda_file: ...}``: registered as an environment version, built into a venv."""

    cloud_keys: ClassVar[frozenset[str]] = frozenset(
        {"image", "build", "os_type", "inference_config", "properties", "datastore", "version"}
    )

    conda_file: ExistingPath
    name: Name | None = None
    description: Text = ""
    tags: Strings = {}


# ``NAME[:V|@A]`` (``azureml:`` allowed; checked against the registry when stored) or an inline mapping
ModelReference = Annotated[
    Annotated[str, Tag("str")] | Annotated[InlineModel, Tag("InlineModel")], by_shape("InlineModel"), REFERENCE
]
EnvironmentReference = Annotated[
    Annotated[str, Tag("str")] | Annotated[InlineEnvironment, Tag("InlineEnvironment")],
    by_shape("InlineEnvironment"),
    REFERENCE,
]


class CodeConfiguration(Document):
    """The scoring script (``scoring_script``, relative to ``code``) and the folder it runs in."""

    code: Folder
    scoring_script: NonEmpty

    @property
    def script_path(self) -> Path:
        return Path(self.code) / self.scoring_script


def _listed_model(value: object) -> str:
    """An entry of ``models:``: ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS`` (``azureml:`` allowed),
    read here and resolved to a version when the deployment is stored."""
    if not isinstance(value, str):
        raise ValueError(f"expected a registered model reference (NAME:VERSION or NAME@ALIAS), got {describe(value)}")
    try:
        parse_ref(value, "reference")
    except ValidationError as exc:
        raise ValueError(str(exc).removeprefix("reference: ").removeprefix("reference ")) from None
    return value.strip()


# modelport's own key: the registered models a scoring script calls in process (``modelport.models``)
ListedModels = list[Annotated[str, BeforeValidator(_listed_model)]]


class RequestSettings(Document):
    """Enforced by the router: 408 past the timeout, 429 beyond ``2 × max_concurrent × instances``."""

    request_timeout_ms: Annotated[int, Field(ge=1, le=MAX_REQUEST_TIMEOUT_MS), between(1, MAX_REQUEST_TIMEOUT_MS)] = (
        5000
    )
    max_concurrent_requests_per_instance: Count = 1
    max_queue_wait_ms: NonNegative = 500  # deprecated in Azure too


class Probe(Document):
    """Liveness (failing → restart) or readiness (failing → out of rotation), in seconds."""

    initial_delay: Delay = 10.0
    period: Seconds = 10.0
    timeout: Seconds = 2.0
    success_threshold: Count = 1
    failure_threshold: Count = 30


# A Kubernetes resource quantity: ``2``, ``500m``, ``1.5``, ``512Mi``, ``1G``, ``1e3``
_QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+)?$")
_RESOURCE_NAME = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-zA-Z0-9]([-_.a-zA-Z0-9]*[a-zA-Z0-9])?$")


def _quantities(value: object) -> object:
    """``{cpu: 1, memory: 2Gi}``: resource names to Kubernetes quantities, kept as text."""
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping of resource names to quantities, got {describe(value)}")
    quantities: dict[str, str] = {}
    for key, amount in value.items():
        name = str(key)
        if not _RESOURCE_NAME.match(name):
            raise ValueError(f"{name!r} is not a resource name (cpu, memory, nvidia.com/gpu...)")
        text = scalar_text(amount) if not isinstance(amount, bool) else ""
        if not _QUANTITY.match(text):
            raise ValueError(f"{name}: {describe(amount)} is not a quantity (such as 500m, 2, 512Mi, 4Gi)")
        quantities[name] = text
    return quantities


Quantities = Annotated[dict[str, str], BeforeValidator(_quantities)]


class Resources(Document):
    """``resources.requests`` and ``resources.limits`` (Azure's Kubernetes deployments): what a
    replica asks of a node and may use at most. Rendered into Kubernetes manifests; a local
    replica is not limited by them."""

    requests: Quantities = {}
    limits: Quantities = {}


class ScaleSettings(Document):
    """``scale_settings``: ``default`` keeps ``instance_count`` replicas; ``target_utilization``
    moves between ``min_instances`` and ``max_instances`` to keep requests in flight per replica
    near ``target_utilization_percentage`` of ``max_concurrent_requests_per_instance``, looking
    every ``polling_interval`` seconds (Azure's defaults: 1, 1, 70 %, 1 s). ``scale_down_delay``
    (modelport's; a HorizontalPodAutoscaler's scale-down stabilization window) is how long the
    load must stay low before a replica is removed."""

    type: Annotated[ScaleType, one_of(ScaleType)] = ScaleType.DEFAULT
    min_instances: Count = 1
    max_instances: Count = 1
    target_utilization_percentage: Annotated[int, Field(ge=1, le=100), between(1, 100)] = 70
    polling_interval: Seconds = 1.0
    scale_down_delay: Delay = 300.0

    @model_validator(mode="after")
    def _ordered(self) -> ScaleSettings:
        if self.min_instances > self.max_instances:
            raise ValueError(f"max_instances: {self.max_instances} is less than min_instances ({self.min_instances})")
        return self

    @property
    def autoscaled(self) -> bool:
        return self.type is ScaleType.TARGET_UTILIZATION


def check_runnable(model: object, code: CodeConfiguration | None, info: ValidationInfo) -> None:
    """A deployment (online or batch) that cannot start is refused when it is read: it needs
    something to run, and its scoring script must exist (a stored one is not re-checked on disk)."""
    if model is None and code is None:
        raise ValueError("model: a deployment needs a model, a code_configuration, or both")
    stored = bool((info.context or {}).get("stored"))
    if code is not None and not stored and not code.script_path.is_file():
        raise ValueError(f"code_configuration.scoring_script: {code.script_path} does not exist")


def _model_config(fields: dict[str, Any]) -> dict[str, Any]:
    """Triton config fields laid over the model's own (``max_batch_size``, ``dynamic_batching``,
    ``instance_group``...): checked by building a config from them, kept as given."""
    try:
        override_config(None, "check", fields, "model_config")
    except ValidationError as exc:  # pydantic names the field
        raise ValueError(str(exc).removeprefix("model_config: ")) from None
    return fields


class DeploymentSpec(Document):
    """``deployment.yml``: a model version + scoring code + environment + replicas and their settings.

    ``models`` is modelport's own key (Azure's CLI has none): registered models the scoring script
    calls in process through ``modelport.models``, loaded by each replica beside the script."""

    cloud_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "type",
            "instance_type",
            "app_insights_enabled",
            "egress_public_network_access",
            "private_network_connection",
            "properties",
            "model_mount_path",
            "startup_probe",
            "with_package",
        }
    )

    name: Name
    endpoint_name: Name
    description: Text = ""
    tags: Strings = {}
    model: ModelReference | None = None
    code_configuration: CodeConfiguration | None = None
    models: ListedModels = []
    environment: EnvironmentReference | None = None
    instance_count: Count = 1
    request_settings: RequestSettings = RequestSettings()
    liveness_probe: Probe = Probe()
    readiness_probe: Probe = Probe()
    environment_variables: Strings = {}
    # ``model_config`` in YAML; pydantic keeps that attribute name for itself
    config_overrides: Annotated[dict[str, Any], AfterValidator(_model_config)] = Field({}, alias="model_config")
    data_collector: DataCollector = DataCollector()
    resources: Resources = Resources()
    scale_settings: ScaleSettings = ScaleSettings()

    @model_validator(mode="after")
    def _runnable(self, info: ValidationInfo) -> DeploymentSpec:
        check_runnable(self.model, self.code_configuration, info)
        if self.config_overrides and self.code_configuration is not None:
            raise ValueError("model_config: tunes a no-code model's server; a scoring script's deployment has none")
        if self.models and self.code_configuration is None:
            raise ValueError("models: lists the models a scoring script calls; add a code_configuration")
        return self

    @property
    def max_replicas(self) -> int:
        """The most replicas the deployment runs: ``instance_count``, or ``max_instances`` when autoscaled."""
        return self.scale_settings.max_instances if self.scale_settings.autoscaled else self.instance_count

    @property
    def min_replicas(self) -> int:
        """The fewest replicas the deployment runs: ``instance_count``, or ``min_instances`` when autoscaled."""
        return self.scale_settings.min_instances if self.scale_settings.autoscaled else self.instance_count

    @property
    def max_in_flight(self) -> int:
        """Requests in flight beyond which the router answers 429 (Azure's gateway rule), counted
        over the most replicas the deployment may run, so that a load that is being scaled out
        for is queued rather than refused."""
        return 2 * self.request_settings.max_concurrent_requests_per_instance * self.max_replicas

    def to_dict(self) -> dict[str, Any]:
        """What the database stores (the YAML keys, paths absolute); ``models`` only when listed,
        so that deployments without it read and show as they did."""
        return self.model_dump(mode="json", by_alias=True, exclude=None if self.models else {"models"})
