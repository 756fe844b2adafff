"""``modelport up`` / ``down`` / ``status``: the local control plane for online endpoints."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from modelport.cli.context import AppContext, pass_app
from modelport.cli.output import output_option, print_json, print_table


def with_client(function: Callable[..., None]) -> Callable[..., None]:
    """Adds ``--url`` to a command and passes it a ``client`` for the daemon there."""

    @click.option("--url", default=None, metavar="URL",
                  help="Daemon URL [default: $MODELPORT_URL or http://127.0.0.1:7000].")
    @functools.wraps(function)
    def wrapper(url: str | None, **kwargs: Any) -> None:
        from modelport.control.client import DaemonClient

        client = DaemonClient(url)
        try:
            function(client=client, **kwargs)
        finally:
            client.close()

    return wrapper


@click.command("up")
@click.option("--port", default=7000, show_default=True, type=click.IntRange(1, 65535),
              help="Port on 127.0.0.1 for the management API and the endpoints.")
@click.option("--foreground", is_flag=True, help="Serve in this process until Ctrl-C instead of in the background.")
@pass_app
def up(app: AppContext, port: int, foreground: bool) -> None:
    """Start the daemon: management API, endpoint router and replica supervisor. Endpoints
    defined earlier serve again without being redefined."""
    from modelport.control import daemon

    if foreground:
        daemon.run(app.workspace, port)
        return
    url = daemon.spawn(app.workspace.root, port)
    click.echo(f"modelport daemon running at {url} (workspace {app.workspace.root})")
    if port != 7000:
        click.echo(f"point the CLI at it with --url {url} or MODELPORT_URL={url}", err=True)


@click.command("down")
@pass_app
def down(app: AppContext) -> None:
    """Stop the daemon and its replicas."""
    from modelport.control import daemon

    click.echo(daemon.stop(app.workspace.root))


@click.command("status")
@output_option
@with_client
def status(client: Any, output: str) -> None:
    """Show the daemon's endpoints, deployments and replicas."""
    info = client.call("GET", "status")
    if output == "json":
        print_json(info)
        return
    click.echo(f"modelport daemon {info['version']} at {info['url']} (workspace {info['workspace']})")
    rows = [
        (endpoint["name"], deployment["name"], endpoint["traffic"].get(deployment["name"], 0),
         deployment["provisioning_state"], _replicas(deployment["replicas"]))
        for endpoint in info["endpoints"] for deployment in endpoint["deployments"]
    ]
    print_table(["endpoint", "deployment", "traffic %", "state", "replicas"], rows)


def _replicas(replicas: list[dict]) -> str:
    ready = sum(replica["state"] == "ready" for replica in replicas)
    restarts = sum(replica["restarts"] for replica in replicas)
    return f"{ready}/{len(replicas)} ready" + (f", {restarts} restarts" if restarts else "")
