"""``modelport pipeline``: what is done with a registered pipeline besides serving it."""

from __future__ import annotations

from pathlib import Path

import click

from modelport.cli.context import AppContext, pass_app
from modelport.cli.examples import examples


@click.group(
    "pipeline",
    epilog=examples(
        (
            "Export a registered pipeline (pinned steps, no conditions) for Triton",
            "modelport pipeline export scoring:2 --triton ./repo",
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
    ),
)
@click.argument("ref")
@click.option(
    "--triton",
    "triton",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write the Triton model repository into: the ensemble and its steps' models.",
)
@pass_app
def export(app: AppContext, ref: str, triton: Path) -> None:
    """Write REF (a registered pipeline) as the Triton ensemble that runs it; refused when a step
    has a when: condition or an output merges several tensors (an ensemble has neither)."""
    from modelport.registry.pipeline_export import export_triton

    for folder in export_triton(app.workspace.models, ref, triton):
        click.echo(str(folder))
