"""``modelport ui``: the dashboard of the workspace's daemon, opened in a browser already signed in."""

from __future__ import annotations

from typing import Any

import click

from modelport.cli.daemon import with_client
from modelport.cli.examples import examples


@click.command(
    "ui",
    epilog=examples(
        ("Open the dashboard, signed in", "modelport ui"),
        (
            "Print a login link to open elsewhere (it works once, within 5 minutes)",
            "modelport ui --no-browser",
        ),
    ),
)
@click.option("--no-browser", is_flag=True, help="Print the login link only; open no browser.")
@with_client
def ui(client: Any, no_browser: bool) -> None:
    """Open the daemon's web dashboard (models, endpoints, traffic) with a one-time login link.

    The link signs one browser in once; the dashboard also takes the token (`modelport token`)."""
    link = client.call("POST", "ui/login-links")
    click.echo(f"dashboard: {client.url}/")
    click.echo(f"login link (works once, for {int(link['expires_in'])} s): {link['url']}")
    if not no_browser:
        import webbrowser

        if not webbrowser.open(link["url"]):
            click.echo("no browser could be started: open the link above", err=True)
