"""``modelport package``: a model or a deployment as a container build context, and its image."""

from __future__ import annotations

from pathlib import Path

import click

from modelport.cli.context import AppContext, pass_app
from modelport.cli.examples import examples


@click.command(
    "package",
    epilog=examples(
        ("Write the build context of a registered model", "modelport package fraud@prod --output-dir ./fraud-image"),
        (
            "Build the image of an online deployment with whatever builder is there, and save it",
            "modelport package web/blue --output-dir ./web-blue --build --save web-blue.tar",
        ),
        (
            "A deployment file, built daemonless with buildah on your own base image",
            "modelport package -f deployment.yml --output-dir ./ctx --build --builder buildah "
            "--base-image registry.example.com/python:3.11",
        ),
    ),
)
@click.argument("target", required=False)
@click.option(
    "--file",
    "-f",
    type=click.Path(path_type=Path),
    default=None,
    help="A deployment.yml (Azure ML CLI v2 YAML, as deployment create takes it) instead of a TARGET.",
)
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="Where the build context goes (a new or empty folder).",
)
@click.option(
    "--base-image",
    metavar="IMAGE",
    default=None,
    help="The image to build on: a name, a local image, or oci-archive:PATH / docker-archive:PATH "
    "[default: python:X.Y-slim of the running Python].",
)
@click.option("--build", is_flag=True, help="Build the image after writing the context.")
@click.option(
    "--tag", "-t", default=None, help="The image's tag [default: NAME:VERSION of the model, or ENDPOINT-DEPLOYMENT]."
)
@click.option(
    "--builder",
    metavar="auto|docker|podman|buildah",
    default="auto",
    show_default=True,
    help="What builds the image: auto takes docker or podman when its engine answers, else buildah.",
)
@click.option(
    "--save", type=click.Path(path_type=Path), default=None, help="Write the built image to this archive file."
)
@click.option("--gpu", is_flag=True, help="Install the GPU build of onnxruntime (the image then needs --gpus all).")
@pass_app
def package(
    app: AppContext,
    target: str | None,
    file: Path | None,
    output_dir: Path,
    base_image: str | None,
    build: bool,
    tag: str | None,
    builder: str,
    save: Path | None,
    gpu: bool,
) -> None:
    """Package TARGET — a registered model (NAME, NAME:VERSION, NAME@ALIAS), served without code as
    `modelport serve` serves it, or an online deployment ENDPOINT/DEPLOYMENT — as an OCI image
    build context: a Containerfile, the model files verified against the registry, the scoring
    code, and every Python package as pinned wheels, so the build needs no network beyond the base
    image. The same inputs give the same context digest.

    The image runs `modelport serve` as an unprivileged user with the deployment's settings and
    no workspace; WORKER_COUNT, AZUREML_MODEL_DIR and AZUREML_ENTRY_SCRIPT are honoured."""
    from modelport.packaging.package import package as make_package

    result = make_package(
        app.workspace,
        target,
        file=file,
        output_dir=output_dir,
        base_image=base_image,
        build=build,
        tag=tag,
        builder=builder,
        save=save,
        gpu=gpu,
        note=lambda line: click.echo(line, err=True),
    )
    click.echo(f"context: {result.output_dir}")
    click.echo(f"digest: sha256:{result.digest}")
    if result.image is not None:
        click.echo(f"image: {result.image} (built with {result.builder})")
    if result.archive is not None:
        click.echo(f"archive: {result.archive}")
