"""KServe objects of an endpoint: per deployment a ServingRuntime for its modelport image and an
InferenceService serving it; the endpoint's split as ``canaryTrafficPercent`` (two live
deployments) or an InferenceGraph ``Splitter`` (more).

Choices made here:

- Each packaged image holds its own model, so each deployment gets its own ServingRuntime
  (``supportedModelFormats`` from its model's flavor, ``autoSelect: false``) and its
  InferenceService names it. ``storageUri`` is the ``--storage-uri`` placeholder: the image
  does not read it.
- KServe splits a canary against the *previously rolled-out* revision of one InferenceService:
  the endpoint's InferenceService (named after the endpoint) is written twice,
  ``rollout-stable.yaml`` (the larger share, applied first, outside the kustomization) and, in
  the kustomization, the canary predictor with ``canaryTrafficPercent`` its share.
- ``scale_settings: target_utilization`` becomes KServe's ``concurrency`` metric: requests in
  flight per replica, as modelport measures utilization.
"""

from __future__ import annotations

import math
from typing import Any

from modelport.kube.core import (
    PORTS,
    Object,
    Placement,
    http_probe,
    labels,
    model_annotations,
    resources_of,
    server_name,
)
from modelport.kube.inputs import EndpointInput, Served
from modelport.kube.names import object_name

GROUP = "serving.kserve.io"
RUNTIME_API = f"{GROUP}/v1alpha1"
SERVICE_API = f"{GROUP}/v1beta1"
# KServe's names of model formats, where modelport's flavor name differs
FORMATS = {"torch": "pytorch"}
SCRIPT_FORMAT = "modelport-script"  # a scoring script without a model
HTTP_PORT = PORTS[0][1]


def model_format(served: Served) -> str:
    return SCRIPT_FORMAT if served.model is None else FORMATS.get(served.model.flavor, served.model.flavor)


def predictor_host(endpoint: EndpointInput, served: Served, place: Placement) -> str:
    """Where a deployment's InferenceService answers in the cluster (KServe's predictor Service, port 80)."""
    return place.host(f"{server_name(endpoint, served)}-predictor")


def deployment_objects(endpoint: EndpointInput, served: Served, place: Placement, storage_uri: str) -> list[Object]:
    name = server_name(endpoint, served)
    return [_runtime(endpoint, served, place, name), _service(endpoint, served, place, name, name, storage_uri)]


def canary(
    endpoint: EndpointInput, stable: Served, canary: Served, percent: int, place: Placement, storage_uri: str
) -> tuple[Object, Object]:
    """The endpoint's InferenceService as first rolled out (``stable``) and with ``canary`` taking ``percent``."""
    name = object_name(endpoint.spec.name)
    first = _service(endpoint, stable, place, name, server_name(endpoint, stable), storage_uri)
    second = _service(endpoint, canary, place, name, server_name(endpoint, canary), storage_uri)
    second["spec"]["predictor"]["canaryTrafficPercent"] = percent
    return first, second


def graph(endpoint: EndpointInput, weights: dict[str, int], place: Placement) -> Object:
    """An InferenceGraph whose ``root`` Splitter sends each deployment's share to its InferenceService."""
    by_name = {served.name: served for served in endpoint.deployments}
    steps = [
        {"name": object_name(deployment), "serviceName": server_name(endpoint, by_name[deployment]), "weight": weight}
        for deployment, weight in sorted(weights.items())
    ]
    return _graph(endpoint, "Splitter", steps, place)


def sequence(endpoint: EndpointInput, services: list[tuple[str, str]], place: Placement) -> Object:
    """An InferenceGraph whose ``root`` Sequence calls ``services`` (step name, InferenceService)
    in order. KServe's router sends the graph's request to the first and, with ``data:
    $response``, each later one the previous step's whole response body, unchanged."""
    steps: list[Object] = [
        {"name": step, "serviceName": service, **({"data": "$response"} if index else {})}
        for index, (step, service) in enumerate(services)
    ]
    return _graph(endpoint, "Sequence", steps, place)


def _graph(endpoint: EndpointInput, router: str, steps: list[Object], place: Placement) -> Object:
    name = object_name(endpoint.spec.name)
    return {
        "apiVersion": RUNTIME_API,
        "kind": "InferenceGraph",
        "metadata": place.metadata(name, _endpoint_labels(endpoint, name)),
        "spec": {"nodes": {"root": {"routerType": router, "steps": steps}}},
    }


def _endpoint_labels(endpoint: EndpointInput, name: str) -> dict[str, str]:
    own = labels(endpoint, None, name)
    own["app.kubernetes.io/component"] = "endpoint"
    own["app.kubernetes.io/name"] = "modelport-server"
    return own


def _runtime(endpoint: EndpointInput, served: Served, place: Placement, name: str) -> Object:
    container: Object = {
        "name": "kserve-container",
        "image": place.images[served.name],
        "env": [
            {"name": "MODELPORT_HOST", "value": "0.0.0.0"},
            {"name": "MODELPORT_HTTP_PORT", "value": str(HTTP_PORT)},
            *({"name": key, "value": value} for key, value in sorted(served.spec.environment_variables.items())),
        ],
        # one port: Knative (KServe's serverless mode) routes to a single one, named for HTTP/1
        "ports": [{"name": "http1", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    spec: dict[str, Any] = {
        "supportedModelFormats": [{"name": model_format(served), "autoSelect": False}],
        "protocolVersions": ["v2", "grpc-v2"],
        "multiModel": False,
        "containers": [container],
    }
    return {
        "apiVersion": RUNTIME_API,
        "kind": "ServingRuntime",
        "metadata": place.metadata(name, labels(endpoint, served, name), model_annotations(served)),
        "spec": spec,
    }


def _service(endpoint: EndpointInput, served: Served, place: Placement, name: str, runtime: str, uri: str) -> Object:
    spec = served.spec
    model: Object = {
        "modelFormat": {"name": model_format(served)},
        "runtime": runtime,
        "protocolVersion": "v2",
        "storageUri": uri.replace("{endpoint}", endpoint.spec.name).replace("{deployment}", served.name),
        "readinessProbe": http_probe(spec.readiness_probe, "/v2/health/ready", HTTP_PORT),
        "livenessProbe": http_probe(spec.liveness_probe, "/v2/health/live", HTTP_PORT, live=True),
    }
    resources = resources_of(spec)
    if resources:
        model["resources"] = resources
    predictor: Object = {"model": model, "minReplicas": spec.min_replicas, "maxReplicas": spec.max_replicas}
    scale = spec.scale_settings
    if scale.autoscaled:
        per_replica = spec.request_settings.max_concurrent_requests_per_instance
        predictor["scaleMetric"] = "concurrency"
        predictor["scaleTarget"] = max(1, math.floor(per_replica * scale.target_utilization_percentage / 100))
    return {
        "apiVersion": SERVICE_API,
        "kind": "InferenceService",
        "metadata": place.metadata(name, labels(endpoint, served, name), model_annotations(served)),
        "spec": {"predictor": predictor},
    }
