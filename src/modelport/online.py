"""The SDK for online endpoints: what ``modelport endpoint`` / ``deployment`` do, from Python.

Endpoints live in the daemon (``modelport up``), so this talks to its management API, as the CLI
does; definitions are the same Azure ML CLI v2 mappings, given as a dict or a YAML file, with the
same ``set`` overrides (``["instance_count=2"]``)::

    from modelport.online import OnlineEndpoints

    with OnlineEndpoints() as online:     # the workspace's daemon and token ($MODELPORT_HOME or ./.modelport)
        online.create_endpoint({"name": "fraud", "auth_mode": "key"})
        online.create_deployment("blue.yml", all_traffic=True)
        online.invoke("fraud", {"data": [[0.1] * 32]})
        online.update_endpoint("fraud", set=["traffic.blue=90", "traffic.green=10"])

The daemon and its token are found the way the CLI finds them (``url``/``$MODELPORT_URL``, the
workspace's ``daemon/daemon.json``; ``token``/``$MODELPORT_TOKEN``, the workspace's token file);
``workspace`` names the workspace when it is not the default one.

Every call answers the API's JSON (what ``--output json`` prints); errors raise the same
:class:`~modelport.core.errors.ModelportError` kinds the CLI reports.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from modelport.control.client import DaemonClient
from modelport.core.errors import ModelportError

Definition = Mapping[str, Any] | str | Path | None


class OnlineEndpoints:
    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        workspace: str | os.PathLike[str] | None = None,
        client: DaemonClient | None = None,
    ) -> None:
        self.client = client or DaemonClient(url, token=token, workspace=workspace)

    # -- endpoints ------------------------------------------------------------------------------

    def create_endpoint(self, definition: Definition, *, set: Sequence[str] = ()) -> dict[str, Any]:
        return self.client.call("POST", "endpoints", request_body(definition, set))

    def update_endpoint(self, name: str, definition: Definition = None, *, set: Sequence[str] = ()) -> dict[str, Any]:
        """A new definition, or the stored one with ``set`` applied (traffic, mirror, tags...)."""
        return self.client.call("PUT", f"endpoints/{name}", request_body(definition, set))

    def get_endpoint(self, name: str) -> dict[str, Any]:
        return self.client.call("GET", f"endpoints/{name}")

    def list_endpoints(self) -> list[dict[str, Any]]:
        return self.client.call("GET", "endpoints")

    def delete_endpoint(self, name: str) -> dict[str, Any]:
        return self.client.call("DELETE", f"endpoints/{name}")

    def get_credentials(self, name: str) -> dict[str, str]:
        return self.client.call("GET", f"endpoints/{name}/keys")

    def regenerate_keys(self, name: str, key: str = "primary") -> dict[str, Any]:
        return self.client.call("POST", f"endpoints/{name}/keys/regenerate", {"key": key})

    def invoke(
        self,
        name: str,
        body: bytes | Mapping[str, Any] | list[Any],
        *,
        deployment: str | None = None,
        route: str = "score",
    ) -> Any:
        """POST ``body`` to the endpoint's ``route`` with its key; the decoded JSON answer
        (``deployment`` pins one, whatever the traffic split)."""
        return self.invoke_raw(name, body, deployment=deployment, route=route).json()

    def invoke_raw(
        self,
        name: str,
        body: bytes | Mapping[str, Any] | list[Any],
        *,
        deployment: str | None = None,
        route: str = "score",
    ) -> httpx.Response:
        """:meth:`invoke`'s HTTP answer itself (a 200; anything else raises)."""
        info = self.get_endpoint(name)
        headers = {"content-type": "application/json"}
        if info["auth_mode"] == "key":
            headers["authorization"] = f"Bearer {self.get_credentials(name)['primaryKey']}"
        if deployment is not None:
            headers["azureml-model-deployment"] = deployment
        content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
        response = httpx.post(
            f"{self.client.url}/endpoints/{name}/{route.strip('/')}",
            content=content,
            headers=headers,
            timeout=None,
            trust_env=False,
            verify=self.client.verify,
        )
        if response.status_code != 200:
            raise ModelportError(f"endpoint {name} answered {response.status_code}: {response.text.strip()[:500]}")
        return response

    # -- deployments ----------------------------------------------------------------------------

    def create_deployment(
        self, definition: Definition, *, endpoint: str | None = None, all_traffic: bool = False, set: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Answers once the replicas are ready; ``all_traffic`` then sends it 100 %."""
        body = request_body(definition, set)
        endpoint = endpoint or _field(body, "endpoint_name")
        return self.client.call("POST", f"endpoints/{endpoint}/deployments", {**body, "all_traffic": all_traffic})

    def update_deployment(
        self, endpoint: str, name: str, definition: Definition = None, *, set: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Rolling: one new replica ready before an old one goes."""
        return self.client.call("PUT", f"endpoints/{endpoint}/deployments/{name}", request_body(definition, set))

    def get_deployment(self, endpoint: str, name: str) -> dict[str, Any]:
        return self.client.call("GET", f"endpoints/{endpoint}/deployments/{name}")

    def list_deployments(self, endpoint: str) -> list[dict[str, Any]]:
        return self.client.call("GET", f"endpoints/{endpoint}/deployments")

    def delete_deployment(self, endpoint: str, name: str) -> dict[str, Any]:
        return self.client.call("DELETE", f"endpoints/{endpoint}/deployments/{name}")

    def logs(self, endpoint: str, name: str, *, lines: int = 100, requests: bool = False) -> str:
        """The replicas' last console lines, or their request logs (JSON lines)."""
        chunks = self.client.stream(
            f"endpoints/{endpoint}/deployments/{name}/logs", {"lines": lines, "follow": 0, "requests": int(requests)}
        )
        return b"".join(chunks).decode("utf-8", "replace")

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> OnlineEndpoints:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def request_body(definition: Definition, overrides: Sequence[str]) -> dict[str, Any]:
    """The API's definition request: the mapping (a YAML file's, read here), the overrides, and
    the folder relative paths start from (the file's, else the current one)."""
    from modelport.core.overrides import read_definition

    if definition is None or isinstance(definition, Mapping):
        return {
            "definition": dict(definition) if definition is not None else None,
            "set": list(overrides),
            "base_dir": str(Path.cwd()),
        }
    data, base = read_definition(definition)
    return {"definition": data, "set": list(overrides), "base_dir": str(base)}


def _field(body: dict[str, Any], key: str) -> str:
    """A field of the definition, ``set`` overrides included (the endpoint a deployment is for)."""
    from modelport.core.overrides import apply_overrides

    value = apply_overrides(body["definition"] or {}, body["set"]).get(key)
    if not value:
        raise ModelportError(f"{key}: the definition names no {key}")
    return str(value)
