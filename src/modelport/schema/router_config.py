"""``router.yml``: what the standalone router (``modelport router --config FILE``) serves.

A cluster runs one router per endpoint in front of the deployments' Services; ``modelport k8s
render`` writes this file into the router's ConfigMap. It holds what the daemon's router reads
from the workspace database: the split, the mirror, each deployment's addresses and limits, and
where the endpoint's keys are — never the keys themselves, which live in a Secret mounted as
files (``keys_dir/primary`` and ``keys_dir/secondary``), so that the ConfigMap can be read by
anyone who may read the namespace's configuration.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from modelport.schema.choices import AuthMode
from modelport.schema.online import MAX_REQUEST_TIMEOUT_MS, Percentages
from modelport.schema.types import Count, Document, Name, NameKey, NonEmpty, between, one_of


class RoutedDeployment(Document):
    """One deployment behind the router: where its replicas answer and the limits the router
    enforces for it (``request_settings`` of the deployment; ``max_in_flight`` is Azure's
    ``2 × max_concurrent_requests_per_instance × replicas``, computed when the file is written)."""

    urls: Annotated[list[NonEmpty], Field(min_length=1)]
    request_timeout_ms: Annotated[int, Field(ge=1, le=MAX_REQUEST_TIMEOUT_MS), between(1, MAX_REQUEST_TIMEOUT_MS)] = (
        5000
    )
    max_in_flight: Count = 2


class RouterConfig(Document):
    """One endpoint, as the standalone router serves it."""

    endpoint: Name
    auth_mode: Annotated[AuthMode, one_of(AuthMode)] = AuthMode.KEY
    keys_dir: NonEmpty | None = None
    traffic: Percentages = {}
    mirror_traffic: Percentages = {}
    deployments: dict[NameKey, RoutedDeployment]

    @model_validator(mode="after")
    def _consistent(self) -> RouterConfig:
        if self.auth_mode is AuthMode.KEY and self.keys_dir is None:
            raise ValueError("keys_dir: an endpoint with auth_mode key needs the folder its keys are mounted in")
        for field, weights in (("traffic", self.traffic), ("mirror_traffic", self.mirror_traffic)):
            for name in weights:
                if name not in self.deployments:
                    raise ValueError(f"{field}.{name}: no such deployment in deployments")
        if self.traffic and sum(self.traffic.values()) != 100:
            raise ValueError(f"traffic: the weights sum to {sum(self.traffic.values())}, not 100")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)
