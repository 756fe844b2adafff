"""``modelport pipeline export --kserve DIR``: a registered pipeline as the KServe objects that run
it, where they can.

Each pinned step model gets a ServingRuntime and an InferenceService as ``k8s render --target
kserve`` writes them for a deployment (the model's ``modelport package`` image, ``NAME:VERSION``,
unless ``image`` is given), and one InferenceGraph chains them: its ``root`` is a ``Sequence``
with a step per pipeline step, in order.

KServe's router passes bodies through unchanged: the graph's request goes to the first step as
it came, and each later step (``data: $response``) gets the previous step's whole response. No
tensor is renamed, merged or held back on the way, so a pipeline has an equivalent only when its
tensor names line up with the wire's:

- every step runs on every row (no ``when:``) and every output comes from one tensor, as for a
  Triton ensemble;
- a step's model reads and writes its tensors under the pipeline's names (``{x: x}``);
- the first step reads pipeline inputs, each later step only the previous step's outputs, and
  the pipeline's outputs are the last step's (the Sequence answers with its response alone).

Anything else is refused in one line naming the step (or output) and the tensor. Nothing is
overwritten: the folder is written whole, or the export is refused, as a render is.

The body a later step receives is a v2 *response* (its tensors under ``outputs``); modelport's
server reads such a body as the request of its tensors (:mod:`modelport.protocol.rest`), so the
chain runs on modelport images as KServe routes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from modelport.core.errors import ModelportError, ValidationError
from modelport.kube import core, kserve, writer
from modelport.kube.inputs import EndpointInput, Served
from modelport.kube.names import is_dns_label, object_name
from modelport.kube.render import RenderResult
from modelport.packaging.context import check_output
from modelport.schema.online import DeploymentSpec, EndpointSpec
from modelport.schema.pipeline import PipelineSpec

if TYPE_CHECKING:
    from modelport.registry.stores import WorkspaceStores

DEFAULT_STORAGE_URI = "pvc://modelport-models/{model}/{version}"
OPTION = "--kserve"


def export_kserve(
    ws: WorkspaceStores,
    ref: str,
    output_dir: str | Path,
    *,
    image: str | None = None,
    storage_uri: str | None = None,
    namespace: str | None = None,
) -> RenderResult:
    """Write pipeline ``ref`` into the new folder ``output_dir`` as KServe objects. ``image``
    replaces each step model's packaged image (``{model}`` and ``{version}`` are replaced);
    ``storage_uri`` is the InferenceServices' (:data:`DEFAULT_STORAGE_URI`, same placeholders)."""
    from modelport.packaging.sources import from_model
    from modelport.registry.flavors.pipelines import PIPELINE
    from modelport.registry.pipelines import registered_pipeline

    if namespace is not None and not is_dns_label(namespace):
        raise ValidationError(f"--namespace: {namespace!r} is not a Kubernetes namespace name (a DNS label)")
    output = Path(output_dir)
    try:
        check_output(output)
    except ModelportError as exc:  # the folder is named by this command's option
        raise type(exc)(str(exc).replace("--output-dir", OPTION, 1)) from None
    info = ws.models.get(ref)
    if info.flavor != PIPELINE:
        raise ValidationError(f"model {info.ref} is a {info.flavor} model, not a pipeline")
    registered = registered_pipeline(ws.models.path(info.ref), info.details)
    spec, pins = registered.spec, registered.pins
    check_sequential(info.ref, spec)
    endpoint_spec = EndpointSpec(name=info.name)
    served: dict[tuple[str, int], Served] = {}
    for model, version in dict.fromkeys(pins[step.name] for step in spec.steps):
        source = from_model(ws, f"{model}:{version}")
        name = f"{model}-{version}"
        deployment = DeploymentSpec(name=name, endpoint_name=info.name, model=f"{model}:{version}")
        chosen = source.image if image is None else _fill(image, model, version)
        served[model, version] = Served(deployment, chosen, source.model)
    endpoint = EndpointInput(endpoint_spec, tuple(served.values()))
    place = core.Placement(namespace, {item.name: item.image for item in served.values()}, "")
    uri = storage_uri or DEFAULT_STORAGE_URI
    objects = [
        obj
        for (model, version), item in served.items()
        for obj in kserve.deployment_objects(endpoint, item, place, _fill(uri, model, version))
    ]
    steps = [(object_name(step.name), core.server_name(endpoint, served[pins[step.name]])) for step in spec.steps]
    files = writer.files_of([*objects, kserve.sequence(endpoint, steps, place)])
    writer.write(output, files)
    return RenderResult(output, tuple(files))


def check_sequential(ref: str, spec: PipelineSpec) -> None:
    """Refuse a pipeline whose tensors do not line up with a KServe Sequence (see the module)."""
    from modelport.registry.pipeline_export import check_unconditional

    check_unconditional(OPTION, ref, spec, "a KServe Sequence", "Sequence")
    inputs = {tensor.name for tensor in spec.inputs}
    available = inputs
    for step in spec.steps:
        for role, mapping in (("input", step.inputs), ("output", step.outputs)):
            for own, tensor in sorted(mapping.items()):
                if own != tensor:
                    raise ValidationError(
                        f"{OPTION}: pipeline {ref}: step {step.name!r} {role} {own!r} is pipeline tensor "
                        f"{tensor!r}; KServe passes tensors under the model's own names, so they must be equal"
                    )
        for tensor in sorted(step.inputs.values()):
            if tensor not in available:
                what = "a pipeline input" if tensor in inputs else "not an output of the previous step"
                raise ValidationError(
                    f"{OPTION}: pipeline {ref}: step {step.name!r} reads tensor {tensor!r}, {what}; "
                    "a Sequence step after the first gets the previous step's response alone"
                )
        available = set(step.outputs.values())
    for output in spec.outputs:
        source = output.alternatives[0]
        if output.name != source or source not in available:
            raise ValidationError(
                f"{OPTION}: pipeline {ref}: output {output.name!r} is not an output of the last step "
                f"{spec.steps[-1].name!r} under its own name; a Sequence answers with the last step's response"
            )


def _fill(template: str, model: str, version: int) -> str:
    return template.replace("{model}", model).replace("{version}", str(version))
