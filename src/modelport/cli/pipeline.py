"""``modelport pipeline``: what is done with a registered pipeline besides serving it."""

from __future__ import annotations

from pathlib import Path

import click

from modelport.cli.context import AppContext, pass_app
from modelport.cli.examples import examples
from modelport.core.errors import ValidationError


@click.group(
    "pipeline",
    epilog=examples(
        (
            "Export a registered pipeline (pinned steps, no conditions) for Triton",
            "modelport pipeline export scoring:2 --triton ./repo",
        ),
        (
            "The same as a KServe InferenceGraph over one InferenceService per step model",
            "modelport pipeline export scoring:2 --kserve ./scoring-kserve",
        ),
    ),
)
def pipeline() -> None:
    """Registered pipelines (a pipeline.yaml registered with modelport model register, served with
    modelport serve): export them for other servers."""


@pipeline.command(
    "export",
    epilog=examples(
        (
            "A pipeline without conditional steps as a Triton model repository",
            "modelport pipeline export scoring:2 --triton ./repo",
        ),
        (
            "A sequential pipeline as KServe objects, images from a registry",
            "modelport pipeline export scoring:2 --kserve ./scoring-kserve --image registry.example.com/{model}:{version}",
        ),
    ),
)
@click.argument("ref")
@click.option(
    "--triton",
    "triton",
    default=None,
    type=click.Path(path_type=Path),
    help="Folder to write the Triton model repository into: the ensemble and its steps' models.",
)
@click.option(
    "--kserve",
    "kserve",
    default=None,
    type=click.Path(path_type=Path),
    help="New folder to write the KServe objects into: a ServingRuntime and InferenceService per step "
    "model, the InferenceGraph chaining them, and a kustomization.yaml.",
)
@click.option(
    "--image",
    default=None,
    help="--kserve: the step models' image; {model} and {version} are replaced "
    "[default: NAME:VERSION, as modelport package tags it].",
)
@click.option(
    "--storage-uri",
    default=None,
    help="--kserve: each InferenceService's storageUri; {model} and {version} are replaced (the packaged "
    "image carries its model and does not read it) [default: pvc://modelport-models/{model}/{version}].",
)
@click.option("--namespace", "-n", default=None, help="--kserve: put every object in this namespace.")
@pass_app
def export(
    app: AppContext,
    ref: str,
    triton: Path | None,
    kserve: Path | None,
    image: str | None,
    storage_uri: str | None,
    namespace: str | None,
) -> None:
    """Write REF (a registered pipeline) as the Triton ensemble that runs it (--triton), or as a
    KServe InferenceGraph Sequence over its step models (--kserve); refused when a step has a
    when: condition or an output merges several tensors (neither has them), and for KServe when
    a step's tensors are not the previous step's outputs under the same names."""
    if (triton is None) == (kserve is None):
        raise ValidationError("export: give one of --triton DIR or --kserve DIR")
    if triton is not None:
        if image is not None or storage_uri is not None or namespace is not None:
            raise ValidationError("--triton: --image, --storage-uri and --namespace are --kserve options")
        from modelport.registry.pipeline_export import export_triton

        for folder in export_triton(app.workspace.models, ref, triton):
            click.echo(str(folder))
        return
    from modelport.kube.pipeline import export_kserve

    assert kserve is not None
    result = export_kserve(app.workspace, ref, kserve, image=image, storage_uri=storage_uri, namespace=namespace)
    for name in result.files:
        click.echo(str(result.output_dir / name))
