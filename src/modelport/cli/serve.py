"""``modelport serve``: a scoring server for registered models or a model-repository folder."""

from __future__ import annotations

import asyncio

import click

from modelport.cli.context import AppContext, pass_app
from modelport.core.errors import ValidationError


@click.command("serve")
@click.argument("targets", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--http-port", default=8000, show_default=True, type=int, help="HTTP port (v2 and /score).")
@click.option("--grpc-port", default=8001, show_default=True, type=int, help="gRPC port.")
@click.option("--metrics-port", default=8002, show_default=True, type=int, help="Prometheus metrics port.")
@click.option("--no-grpc", is_flag=True, help="Do not start the gRPC server.")
@click.option("--max-body-mb", default=100, show_default=True, type=click.IntRange(min=1),
              help="Largest request body accepted (413 beyond).")
@click.option("--request-timeout-ms", default=None, type=click.IntRange(min=1),
              help="Per-request time limit (503 beyond) [default: none].")
@pass_app
def serve(app: AppContext, targets: tuple[str, ...], host: str, http_port: int, grpc_port: int, metrics_port: int,
          no_grpc: bool, max_body_mb: int, request_timeout_ms: int | None) -> None:
    """Serve TARGETS: registered models (NAME, NAME:VERSION, NAME@ALIAS) or a folder laid out like a
    Triton model repository (<repo>/<model>/<version>/model.onnx, optional config.pbtxt/config.yaml)."""
    from modelport.serving.repository import ModelRepository
    from modelport.serving.server import ServeOptions
    from modelport.serving.server import serve as run_server
    from modelport.serving.targets import resolve_targets

    if not targets:
        raise ValidationError("serve: give at least one TARGET (a registered model or a model-repository folder)")
    repository = ModelRepository(resolve_targets(list(targets), lambda: app.workspace))
    repository.load_all()
    options = ServeOptions(
        host=host, http_port=http_port, grpc_port=None if no_grpc else grpc_port, metrics_port=metrics_port,
        max_body=max_body_mb * 1024 * 1024, timeout_s=None if request_timeout_ms is None else request_timeout_ms / 1000,
    )
    try:
        asyncio.run(run_server(repository, options, on_ready=lambda where: click.echo(f"serving {', '.join(repository.names)} on {where}", err=True)))
    finally:
        repository.close()
