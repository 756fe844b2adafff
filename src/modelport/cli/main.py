"""Root command: global options, lazy workspace, and the one place errors become exit codes.

Exit codes follow the issue's convention: 0 success, 1 failure (one ``error:`` line on
stderr naming the bad field, file or reference), 2 usage error (click's own). A full disk or a
refused access is such a failure too, naming the path, wherever it was raised.

The process umask is 0077 from the start: what the CLI writes, and what ``serve``, the daemon,
its replicas and batch runners (all started from here) write, is the user's alone.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import click

from modelport.cli.context import AppContext
from modelport.cli.examples import examples
from modelport.core.errors import ModelportError
from modelport.core.files import disk_error, private_umask
from modelport.core.version import __version__

# Each command's module, imported when the command runs (or when --help lists them all): a
# command pays for its own imports only — ``model list`` loads no batch, endpoint or serving code.
COMMANDS = {
    "model": "modelport.cli.model:model",
    "environment": "modelport.cli.environment:environment",
    "serve": "modelport.cli.serve:serve",
    "up": "modelport.cli.daemon:up",
    "down": "modelport.cli.daemon:down",
    "status": "modelport.cli.daemon:status",
    "token": "modelport.cli.daemon:token",
    "endpoint": "modelport.cli.endpoint:endpoint",
    "deployment": "modelport.cli.endpoint:deployment",
    "monitor": "modelport.cli.monitor:monitor",
    "profile": "modelport.cli.profile:profile",
    "schema": "modelport.cli.schema:schema",
    "batch-endpoint": "modelport.cli.batch:batch_endpoint",
    "batch-deployment": "modelport.cli.batch:batch_deployment",
    "job": "modelport.cli.batch:job",
    "package": "modelport.cli.package:package",
    "k8s": "modelport.cli.k8s:k8s",
    "router": "modelport.cli.router:router",
    "ui": "modelport.cli.ui:ui",
    "pipeline": "modelport.cli.pipeline:pipeline",
}


class LazyGroup(click.Group):
    """The root group: commands defined here plus the ones in :data:`COMMANDS`, loaded on use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return super().get_command(ctx, name)
        module, _, attribute = COMMANDS[name].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=examples(
        ("The tour: serve, deploy, watch and batch-score a sample model", "modelport demo"),
        (
            "Register a model and serve it (HTTP :8000, gRPC :8001)",
            "modelport model register ./model.onnx --name fraud\nmodelport serve fraud",
        ),
        ("Start the local control plane for online endpoints", "modelport up"),
    ),
)
@click.option(
    "--workspace",
    "-w",
    metavar="DIR",
    default=None,
    help="Workspace folder [default: $MODELPORT_HOME or ./.modelport].",
)
@click.version_option(__version__, prog_name="modelport")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None) -> None:
    """modelport: register models, serve them, and keep them healthy in production."""
    ctx.obj = AppContext(workspace)
    ctx.call_on_close(ctx.obj.close)


@cli.command(
    "init",
    epilog=examples(
        ("Create ./.modelport", "modelport init"),
        ("Create a workspace elsewhere ($MODELPORT_HOME works too)", "modelport --workspace ~/models init"),
    ),
)
@click.pass_obj
def init(app: AppContext) -> None:
    """Create the workspace (the first registration also creates it)."""
    ws = app.workspace
    click.echo(f"workspace ready at {ws.root}")


@cli.command(
    "demo",
    epilog=examples(
        ("The tour in ./.modelport (a second run reuses what the first made)", "modelport demo"),
        ("The tour in a workspace of its own", "modelport --workspace /tmp/tour demo"),
    ),
)
@click.pass_obj
def demo(app: AppContext) -> None:
    """The whole loop on a sample model, each step run as the CLI command you would type.

    \b
    1. builds a small ONNX model (a 32-64-64-4 MLP), registers it as demo-mlp,
       points the alias prod at it and shows it (model register, alias set, show)
    2. serves it on a free loopback port (modelport serve), scores a v2 request
       over HTTP and checks the answer against onnxruntime run in-process
    3. starts the daemon (modelport up), creates the key-authenticated online
       endpoint demo-online with a deployment that collects its payload, invokes it
    4. sends it 300 requests whose first three features run one standard deviation
       high, prints the router's and the replica's metrics, then modelport down
    5. checks the collected inputs for drift against the training data
       (modelport monitor drift): the shifted features are flagged
    6. scores a 2,000-row CSV with the batch endpoint demo-batch and a no-code
       batch deployment (batch-endpoint invoke --wait)
    """
    from modelport.cli.demo import run_demo

    run_demo(app.workspace)


def main() -> None:
    private_umask()
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except ModelportError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as exc:
        error = disk_error(exc)
        if error is None:
            _internal_error(exc)
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    except Exception as exc:
        _internal_error(exc)


def _internal_error(exc: Exception) -> None:
    """A bug: still one line, the traceback on request."""
    if os.environ.get("MODELPORT_DEBUG"):
        traceback.print_exc()
    click.echo(f"error: internal error ({type(exc).__name__}: {exc}); set MODELPORT_DEBUG=1 for details", err=True)
    sys.exit(1)
