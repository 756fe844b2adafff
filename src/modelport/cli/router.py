"""``modelport router``: one endpoint's router as a process of its own, configured by a file."""

from __future__ import annotations

from pathlib import Path

import click

from modelport.cli.examples import examples


@click.command(
    "router",
    epilog=examples(
        (
            "Route an endpoint as router.yml describes it, on http://127.0.0.1:8080",
            "modelport router --config router.yml",
        ),
        (
            "In a container: every interface, request log lines on standard output",
            "modelport router --config /etc/modelport/router.yml --host 0.0.0.0 --port 8080 --request-log -",
        ),
    ),
)
@click.option(
    "--config",
    "config",
    required=True,
    type=click.Path(path_type=Path),
    help="router.yml: the endpoint, its split and mirror, each deployment's URLs and limits, where the keys are.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option(
    "--request-log",
    type=click.Path(path_type=Path),
    default=None,
    help="Write one JSON line per scoring request to FILE (rotated by size); '-' is standard output.",
)
def router(config: Path, host: str, port: int, request_log: Path | None) -> None:
    """Serve one online endpoint without the daemon or a workspace: the daemon's router (key
    auth, split, mirror, pin headers, 429/408/503, /metrics) in front of the deployments' URLs.
    Scoring routes answer at the root and under /endpoints/<endpoint>/; /healthz is open for
    probes. A changed config or key file, or SIGHUP, is applied without dropping requests; a
    file that does not parse is refused and the running configuration keeps serving."""
    from modelport.routing.config_file import load

    loaded = load(config)  # a file that does not load is refused before the server's imports

    from modelport.routing.standalone import run

    run(config, loaded, host, port, request_log)
