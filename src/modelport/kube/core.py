"""Kubernetes objects of an endpoint: per deployment a Deployment, a Service, a
PodDisruptionBudget and (when it autoscales) a HorizontalPodAutoscaler; the router as a
Deployment and Service reading its ConfigMap (``router.yml``) and Secret (the keys).

Objects are plain dicts in the API's shape; :mod:`.writer` writes them. Choices made here:

- The server container runs the image's own entrypoint (``modelport serve`` with the packaged
  settings) on 8000 (HTTP), 8001 (gRPC) and 8002 (metrics), as an unprivileged user with a
  read-only root file system and a writable ``/tmp`` (its HOME).
- ``scale_settings.type: default`` is a fixed ``instance_count`` and gets no
  HorizontalPodAutoscaler; ``target_utilization`` gets one on CPU utilization at
  ``target_utilization_percentage`` of the CPU request (the cluster's metrics server has no
  requests-in-flight metric), ``scale_down_delay`` as the scale-down stabilization window; its
  Deployment names no replica count, so that applying the folder again leaves the
  autoscaler's count alone. ``polling_interval`` has no per-object field (the cluster's
  controller syncs every 15 s by default).
- The PodDisruptionBudget lets one replica at a time be evicted, so a drain never blocks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelport.core.errors import ValidationError
from modelport.kube.inputs import EndpointInput, Served
from modelport.kube.names import label_value, object_name
from modelport.schema.online import DeploymentSpec, Probe

PORTS = (("http", 8000), ("grpc", 8001), ("metrics", 8002))
ROUTER_PORT = 8080
ROUTER_CONFIG_DIR = "/etc/modelport/router"
ROUTER_CONFIG_KEY = "router.yml"
KEYS_DIR = "/etc/modelport/keys"
UID = 10001  # the packaged image's user (packaging.containerfile)
MAX_STABILIZATION_S = 3600  # the API's limit on a scaling policy's stabilization window
Object = dict[str, Any]


@dataclass(frozen=True)
class Placement:
    """Where the objects go and what they run: the namespace, and the images by deployment."""

    namespace: str | None
    images: Mapping[str, str]  # deployment name → image
    router_image: str

    def metadata(self, name: str, labels: Mapping[str, str], annotations: Mapping[str, str] | None = None) -> Object:
        meta: Object = {"name": name, "labels": dict(labels)}
        if self.namespace:
            meta["namespace"] = self.namespace
        if annotations:
            meta["annotations"] = dict(annotations)
        return meta

    def host(self, service: str) -> str:
        """A Service's DNS name as the router reaches it (short within the namespace)."""
        return f"{service}.{self.namespace}.svc" if self.namespace else service


# -- names and labels ------------------------------------------------------------------------------


def server_name(endpoint: EndpointInput, served: Served) -> str:
    return object_name(endpoint.spec.name, served.name)


def router_name(endpoint: EndpointInput) -> str:
    return object_name(endpoint.spec.name, "router")


def selector(endpoint: EndpointInput, served: Served | None) -> dict[str, str]:
    """What a Service and a PodDisruptionBudget select: one deployment's pods, or the router's."""
    labels = {"modelport.io/endpoint": label_value(endpoint.spec.name)}
    if served is None:
        return labels | {"app.kubernetes.io/component": "router"}
    return labels | {"modelport.io/deployment": label_value(served.name)}


def labels(endpoint: EndpointInput, served: Served | None, instance: str) -> dict[str, str]:
    """``app.kubernetes.io/*`` and modelport's own labels of every object."""
    return {
        "app.kubernetes.io/name": "modelport-router" if served is None else "modelport-server",
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": "router" if served is None else "deployment",
        "app.kubernetes.io/part-of": label_value(endpoint.spec.name),
        "app.kubernetes.io/managed-by": "modelport",
    } | selector(endpoint, served)


def model_annotations(served: Served) -> dict[str, str]:
    """The model a deployment serves, by name, version and content hash, where it has one."""
    if served.model is None:
        return {}
    return {
        "modelport.io/model": f"{served.model.name}:{served.model.version}",
        "modelport.io/model-flavor": served.model.flavor,
        "modelport.io/model-sha256": served.model.digest,
    }


# -- one deployment -------------------------------------------------------------------------------


def deployment_objects(endpoint: EndpointInput, served: Served, place: Placement) -> list[Object]:
    name = server_name(endpoint, served)
    objects = [
        _deployment(endpoint, served, place, name),
        _service(place, name, labels(endpoint, served, name), selector(endpoint, served), PORTS),
        _disruption_budget(place, name, labels(endpoint, served, name), selector(endpoint, served)),
    ]
    if served.spec.scale_settings.autoscaled:
        objects.append(_autoscaler(endpoint, served, place, name))
    return objects


def server_container(served: Served, image: str) -> Object:
    """The container of a deployment's pods, shared with KServe's runtime."""
    spec = served.spec
    env = {
        "MODELPORT_HOST": "0.0.0.0",
        "MODELPORT_HTTP_PORT": str(PORTS[0][1]),
        "MODELPORT_GRPC_PORT": str(PORTS[1][1]),
        "MODELPORT_METRICS_PORT": str(PORTS[2][1]),
        **spec.environment_variables,
    }
    container: Object = {
        "name": "server",
        "image": image,
        "env": [{"name": key, "value": value} for key, value in sorted(env.items())],
        "ports": [{"name": port, "containerPort": number, "protocol": "TCP"} for port, number in PORTS],
        "livenessProbe": http_probe(spec.liveness_probe, "/v2/health/live", live=True),
        "readinessProbe": http_probe(spec.readiness_probe, "/v2/health/ready"),
        "securityContext": SECURITY,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    resources = resources_of(spec)
    if resources:
        container["resources"] = resources
    return container


SECURITY: Object = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": UID,
    "runAsGroup": UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def resources_of(spec: DeploymentSpec) -> Object:
    out: Object = {}
    if spec.resources.requests:
        out["requests"] = dict(sorted(spec.resources.requests.items()))
    if spec.resources.limits:
        out["limits"] = dict(sorted(spec.resources.limits.items()))
    return out


def _deployment(endpoint: EndpointInput, served: Served, place: Placement, name: str) -> Object:
    spec = served.spec
    own = labels(endpoint, served, name)
    # a replica finishes what it holds before it stops: the longest request, and then some
    grace = math.ceil(spec.request_settings.request_timeout_ms / 1000) + 10
    deployment: Object = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": place.metadata(name, own, model_annotations(served)),
        "spec": {
            "selector": {"matchLabels": selector(endpoint, served)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": own, "annotations": model_annotations(served)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "fsGroup": UID},
                    "terminationGracePeriodSeconds": grace,
                    "containers": [server_container(served, place.images[served.name])],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
    if not spec.scale_settings.autoscaled:  # else the autoscaler owns the count: applying again keeps it
        deployment["spec"]["replicas"] = spec.instance_count
    return deployment


def http_probe(probe: Probe, path: str, port: int | str = "http", *, live: bool = False) -> Object:
    """Kubernetes counts whole seconds: fractions are rounded up (at least 1 where 0 is refused);
    a liveness probe must succeed once to count (the API refuses another ``successThreshold``)."""
    return {
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": math.ceil(probe.initial_delay),
        "periodSeconds": max(1, math.ceil(probe.period)),
        "timeoutSeconds": max(1, math.ceil(probe.timeout)),
        "successThreshold": 1 if live else probe.success_threshold,
        "failureThreshold": probe.failure_threshold,
    }


def _service(
    place: Placement, name: str, own: Mapping[str, str], chosen: Mapping[str, str], ports: tuple[tuple[str, int], ...]
) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": place.metadata(name, own),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(chosen),
            "ports": [{"name": port, "port": number, "targetPort": port, "protocol": "TCP"} for port, number in ports],
        },
    }


def _disruption_budget(place: Placement, name: str, own: Mapping[str, str], chosen: Mapping[str, str]) -> Object:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": place.metadata(name, own),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(chosen)}},
    }


def _autoscaler(endpoint: EndpointInput, served: Served, place: Placement, name: str) -> Object:
    spec = served.spec
    scale = spec.scale_settings
    if "cpu" not in spec.resources.requests:
        raise ValidationError(
            f"resources.requests.cpu: deployment {served.name!r} autoscales; its HorizontalPodAutoscaler "
            "measures CPU against the request, so give one (or --profile)"
        )
    window = min(MAX_STABILIZATION_S, math.ceil(scale.scale_down_delay))
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": place.metadata(name, labels(endpoint, served, name)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": scale.min_instances,
            "maxReplicas": scale.max_instances,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": scale.target_utilization_percentage},
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": window}},
        },
    }


# -- the router ------------------------------------------------------------------------------------


def router_objects(
    endpoint: EndpointInput, place: Placement, config_text: str, keys: tuple[str, str] | None
) -> list[Object]:
    """The router's Deployment, Service, ConfigMap and (with key auth) Secret. A changed
    ConfigMap reaches running routers as the kubelet updates the mounted file, which the router
    re-reads without dropping requests; nothing restarts."""
    name = router_name(endpoint)
    own = labels(endpoint, None, name)
    chosen = selector(endpoint, None)
    mounts = [{"name": "config", "mountPath": ROUTER_CONFIG_DIR, "readOnly": True}]
    volumes: list[Object] = [{"name": "config", "configMap": {"name": name}}]
    objects = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": place.metadata(name, own),
            "data": {ROUTER_CONFIG_KEY: config_text},
        }
    ]
    if keys is not None:
        secret = object_name(endpoint.spec.name, "keys")
        mounts.append({"name": "keys", "mountPath": KEYS_DIR, "readOnly": True})
        volumes.append({"name": "keys", "secret": {"secretName": secret, "defaultMode": 0o400}})
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": place.metadata(secret, own),
                "type": "Opaque",
                "stringData": {"primary": keys[0], "secondary": keys[1]},
            }
        )
    container = {
        "name": "router",
        "image": place.router_image,
        "command": ["modelport", "router"],
        "args": router_args(),
        "ports": [{"name": "http", "containerPort": ROUTER_PORT, "protocol": "TCP"}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
        "securityContext": SECURITY,
        "volumeMounts": [*mounts, {"name": "tmp", "mountPath": "/tmp"}],
    }
    objects += [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": place.metadata(name, own),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": chosen},
                "template": {
                    "metadata": {"labels": own},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": {"runAsNonRoot": True, "fsGroup": UID},
                        "containers": [container],
                        "volumes": [*volumes, {"name": "tmp", "emptyDir": {}}],
                    },
                },
            },
        },
        _service(place, name, own, chosen, (("http", ROUTER_PORT),)),
        _disruption_budget(place, name, own, chosen),
    ]
    return objects


def router_args() -> list[str]:
    return ["--config", f"{ROUTER_CONFIG_DIR}/{ROUTER_CONFIG_KEY}", "--host", "0.0.0.0", "--port", str(ROUTER_PORT)]
