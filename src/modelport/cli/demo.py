"""``modelport demo``: the README's first command, on the embedded defaults.

It builds a small ONNX model, registers it (reusing an identical earlier registration),
points the ``prod`` alias at it and shows it, so a new user sees the whole registry loop.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from modelport.cli.model import show_info
from modelport.core.errors import NotFoundError
from modelport.registry.manifest import scan
from modelport.registry.models import ModelInfo
from modelport.samples import build_mlp_onnx
from modelport.workspace import Workspace

DEMO_MODEL = "demo-mlp"


def run_demo(ws: Workspace) -> None:
    click.echo(f"workspace: {ws.root}")
    with tempfile.TemporaryDirectory() as tmp:
        model_file = build_mlp_onnx(Path(tmp) / "model.onnx")
        info = _register_once(ws, model_file)
    ws.models.set_alias(DEMO_MODEL, "prod", info.version)
    click.echo(f"registered {info.ref}; alias {DEMO_MODEL}@prod -> {info.ref}")
    show_info(ws.models.get(f"{DEMO_MODEL}@prod"), "table")
    click.echo(f"verified local copy: {ws.models.path(f'{DEMO_MODEL}@prod')}")


def _register_once(ws: Workspace, model_file: Path) -> ModelInfo:
    """Running the demo twice reuses the first registration instead of failing as a duplicate."""
    digest = scan(model_file).digest
    try:
        existing = ws.models.versions(DEMO_MODEL, include_archived=True)
    except NotFoundError:
        existing = []
    for info in existing:
        if info.digest == digest:
            return info
    return ws.models.register(
        model_file, DEMO_MODEL, tags={"source": "modelport demo"}, description="32-64-64-4 ReLU MLP, seed 0"
    )
