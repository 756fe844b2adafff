"""Reading online endpoint and deployment definitions (the models: :mod:`modelport.schema.online`),
and the traffic rules an endpoint's split must follow over its deployments.

Nothing here touches the database: :mod:`modelport.control.catalog` resolves references and
stores the results; :func:`check_routing` holds the traffic rules both use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modelport.core.errors import ValidationError
from modelport.schema.base import parse
from modelport.schema.online import MAX_MIRROR_PERCENT, DeploymentSpec, EndpointSpec


def parse_endpoint(data: Mapping[str, Any]) -> tuple[EndpointSpec, list[str]]:
    """The endpoint and the ignored (cloud-only) key paths."""
    parsed = parse(EndpointSpec, data)
    return parsed.value, list(parsed.ignored)


def parse_deployment(data: Mapping[str, Any], base: Path) -> tuple[DeploymentSpec, list[str]]:
    """The deployment and the ignored key paths; paths in ``data`` are relative to ``base``.
    The scoring script must exist: a deployment that cannot start is refused here."""
    parsed = parse(DeploymentSpec, data, context={"base": base})
    return parsed.value, list(parsed.ignored)


def load_deployment(data: Mapping[str, Any]) -> DeploymentSpec:
    """A deployment as stored by :mod:`modelport.control.catalog` (``DeploymentSpec.to_dict``):
    its paths are absolute and are not checked again, so a damaged snapshot shows up when a
    replica starts, not on every read."""
    return parse(DeploymentSpec, data, context={"base": Path("/"), "stored": True}).value


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
