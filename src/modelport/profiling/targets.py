"""What is profiled and how its trial servers start: a registered model (``NAME``, ``NAME:V``,
``NAME@ALIAS``), a model-repository folder, or a deployment of the running daemon
(``ENDPOINT/DEPLOYMENT``).

Each target is resolved before any server starts, so an unknown model or a bad folder fails at
once, and a registered reference is pinned to one version for the whole profile. A deployment's
trial servers are started by :func:`modelport.control.replica.launch_plan` itself (its
environment, variables, scoring script and ``model_config`` included): the profile measures what
its replicas run, with the trial's settings laid over its ``model_config``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelport.control.definitions import load_deployment
from modelport.control.replica import HOST, launch_plan
from modelport.core.errors import ValidationError
from modelport.core.names import validate_name
from modelport.profiling.trials import ServerPlan
from modelport.runtime.config import ModelConfig, override_config
from modelport.schema.online import DeploymentSpec

if TYPE_CHECKING:
    from modelport.control.client import DaemonClient
    from modelport.registry.stores import WorkspaceStores


@dataclass(frozen=True)
class Target:
    """``plan(overrides)`` is the server of one trial; ``base`` the config the overrides land on
    (the model's own, with a deployment's ``model_config``), None for a script or no config."""

    name: str
    scripted: bool
    plan: Callable[[Mapping[str, Any]], ServerPlan]
    base: ModelConfig | None = None
    deployment: tuple[str, str] | None = None
    model_config: dict[str, Any] = field(default_factory=dict)  # a deployment's own


def is_deployment_ref(text: str) -> bool:
    """``ENDPOINT/DEPLOYMENT`` (model names have no ``/``); an existing folder is a repository."""
    return text.count("/") == 1 and not Path(text).exists()


def model_target(text: str, workspace: Callable[[], WorkspaceStores]) -> Target:
    """A folder holding one model, or a registered reference pinned to its version."""
    from modelport.serving.targets import resolve_targets

    folder = Path(text).is_dir()
    sources = resolve_targets([text], workspace)
    if len(sources) != 1:
        names = ", ".join(source.name for source in sources) or "none"
        raise ValidationError(f"target: {text} holds {len(sources)} models ({names}); profile one model at a time")
    source = sources[0]
    scripted = source.entry_script is not None
    serve_as = str(Path(text).resolve()) if folder else f"{source.name}:{source.version}"
    env = dict(os.environ)
    if not folder:  # the servers open the same workspace as this command, whatever --workspace said
        ws = workspace()
        env.update(
            {
                "MODELPORT_HOME": str(ws.root),
                "MODELPORT_DB_URL": ws.settings.db_url,
                "MODELPORT_ARTIFACT_ROOT": ws.settings.artifact_root,
            }
        )

    def plan(overrides: Mapping[str, Any]) -> ServerPlan:
        config = ["--model-config", json.dumps(dict(overrides))] if overrides and not scripted else []
        command = (sys.executable, "-m", "modelport", "serve", serve_as, "--host", HOST, "--no-grpc", *config)
        return ServerPlan(command, env, os.getcwd())

    return Target(serve_as if not folder else source.name, scripted, plan, None if scripted else source.config)


def deployment_target(text: str, ws: WorkspaceStores, client: DaemonClient) -> Target:
    """A deployment of the daemon ``client`` talks to, read through its management API."""
    from modelport.serving.targets import resolve_targets

    endpoint, _, name = text.partition("/")
    validate_name(endpoint, "endpoint")
    validate_name(name, "deployment")
    served = client.call("GET", "status")["workspace"]
    if Path(served) != ws.root:
        raise ValidationError(
            f"--workspace: the daemon at {client.url} serves workspace {served}, not {ws.root}; "
            f"profile with --workspace {served}"
        )
    view = client.call("GET", f"endpoints/{endpoint}/deployments/{name}")
    keys = {info.alias or name for name, info in DeploymentSpec.model_fields.items()}
    spec = load_deployment({key: value for key, value in view.items() if key in keys})
    source = resolve_targets([str(spec.model)], lambda: ws)[0] if spec.model is not None else None
    scripted = spec.code_configuration is not None or source is None or source.entry_script is not None
    base = None
    if source is not None and not scripted:
        base = (
            override_config(source.config, source.name, spec.config_overrides, "model_config")
            if spec.config_overrides
            else source.config
        )

    def plan(overrides: Mapping[str, Any]) -> ServerPlan:
        trial = (
            spec if scripted else spec.model_copy(update={"config_overrides": merged(spec.config_overrides, overrides)})
        )
        launch = launch_plan(ws, trial)
        return ServerPlan(launch.command, launch.env, launch.cwd)

    return Target(text, scripted, plan, base, (endpoint, name), dict(spec.config_overrides))


def merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` laid over ``base`` as ``override_config`` lays them: mappings merge key by key,
    anything else replaces."""
    result = dict(base)
    for key, value in overrides.items():
        current = result.get(key)
        result[key] = merged(current, value) if isinstance(current, Mapping) and isinstance(value, Mapping) else value
    return result
