"""``modelport up`` / ``down`` / ``status`` / ``token``: the local control plane for online endpoints."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from modelport.cli.context import AppContext, pass_app
from modelport.cli.examples import examples
from modelport.cli.output import output_option, print_json, print_table
from modelport.control.binding import DEFAULT_HOST, DEFAULT_PORT


def with_client(function: Callable[..., None]) -> Callable[..., None]:
    """Adds ``--url`` to a command and passes it a ``client`` for the daemon there, with the
    workspace's token when it is the workspace's own daemon."""

    @click.option(
        "--url",
        default=None,
        metavar="URL",
        help="Daemon URL [default: $MODELPORT_URL, else the workspace's running daemon, else http://127.0.0.1:7000].",
    )
    @pass_app
    @functools.wraps(function)
    def wrapper(app: AppContext, url: str | None, **kwargs: Any) -> None:
        from modelport.control.client import DaemonClient

        client = DaemonClient(url, workspace=app.root)
        try:
            function(client=client, **kwargs)
        finally:
            client.close()

    return wrapper


@click.command(
    "up",
    epilog=examples(
        ("Start the daemon on http://127.0.0.1:7000", "modelport up"),
        ("On another port, printing the management token for curl", "modelport up --port 7010 --print-token"),
        (
            "Reachable from other machines, over HTTPS",
            "modelport up --host 0.0.0.0 --tls-certfile cert.pem --tls-keyfile key.pem --allowed-host models.example.com",
        ),
    ),
)
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port for the management API and the endpoints.",
)
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address to listen on; beyond loopback it needs --tls-certfile/--tls-keyfile or --insecure-expose.",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="HOST[:PORT]",
    help="Another name clients reach the daemon by (Host header), e.g. behind a proxy (repeatable).",
)
@click.option(
    "--tls-certfile", type=click.Path(path_type=Path), default=None, help="Serve HTTPS with this certificate (PEM)."
)
@click.option(
    "--tls-keyfile", type=click.Path(path_type=Path), default=None, help="The certificate's private key (PEM)."
)
@click.option(
    "--insecure-expose",
    is_flag=True,
    help="Listen beyond loopback without TLS (something else must protect the traffic).",
)
@click.option("--print-token", is_flag=True, help="Print the management token (last line of stdout) once started.")
@click.option("--foreground", is_flag=True, help="Serve in this process until Ctrl-C instead of in the background.")
@pass_app
def up(
    app: AppContext,
    port: int,
    host: str,
    allowed_hosts: tuple[str, ...],
    tls_certfile: Path | None,
    tls_keyfile: Path | None,
    insecure_expose: bool,
    print_token: bool,
    foreground: bool,
) -> None:
    """Start the daemon: management API, endpoint router and replica supervisor. Endpoints
    defined earlier serve again without being redefined. The management API takes the
    workspace's token (`modelport token`), which the CLI and SDK read by themselves."""
    from modelport.control import daemon
    from modelport.control.auth import ensure_token
    from modelport.control.binding import Binding

    binding = Binding(host, port, allowed_hosts, tls_certfile, tls_keyfile, insecure_expose)
    binding.check()
    if foreground:
        if print_token:
            click.echo(ensure_token(app.root))
        daemon.run(app.workspace, binding)
        return
    url = daemon.spawn(app.workspace.root, binding)
    click.echo(f"modelport daemon running at {url} (workspace {app.workspace.root})")
    if print_token:
        click.echo(ensure_token(app.root))


@click.command(
    "down",
    epilog=examples(
        ("Stop the workspace's daemon and its replicas", "modelport down"),
    ),
)
@pass_app
def down(app: AppContext) -> None:
    """Stop the daemon and its replicas."""
    from modelport.control import daemon

    click.echo(daemon.stop(app.workspace.root))


@click.command(
    "token",
    epilog=examples(
        (
            "Call the management API with curl",
            'curl -H "Authorization: Bearer $(modelport token)" http://127.0.0.1:7000/api/status',
        ),
        ("Replace the token (the old one stops working at once)", "modelport token --rotate"),
    ),
)
@click.option(
    "--rotate", is_flag=True, help="Replace the token; the running daemon takes only the new one from now on."
)
@pass_app
def token(app: AppContext, rotate: bool) -> None:
    """Print the workspace's management token, for clients other than this CLI and the SDK
    (send it as `Authorization: Bearer <token>`, or set $MODELPORT_TOKEN)."""
    from modelport.control.auth import ensure_token, rotate_token

    click.echo(rotate_token(app.root) if rotate else ensure_token(app.root))


@click.command(
    "status",
    epilog=examples(
        ("Endpoints, deployments, traffic and ready replicas", "modelport status"),
        ("As JSON, for scripts", "modelport status -o json"),
    ),
)
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
        (
            endpoint["name"],
            deployment["name"],
            endpoint["traffic"].get(deployment["name"], 0),
            deployment["provisioning_state"],
            _replicas(deployment["replicas"]),
        )
        for endpoint in info["endpoints"]
        for deployment in endpoint["deployments"]
    ]
    print_table(["endpoint", "deployment", "traffic %", "state", "replicas"], rows)


def _replicas(replicas: list[dict]) -> str:
    ready = sum(replica["state"] == "ready" for replica in replicas)
    restarts = sum(replica["restarts"] for replica in replicas)
    return f"{ready}/{len(replicas)} ready" + (f", {restarts} restarts" if restarts else "")
