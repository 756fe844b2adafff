"""``modelport environment ...``: versioned pip/conda environments and their cached builds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from modelport.cli.context import AppContext, pass_app
from modelport.cli.examples import examples
from modelport.cli.output import add_archive_commands, output_option, parse_pairs, print_fields, print_json, print_table

if TYPE_CHECKING:
    from modelport.registry.environments import EnvironmentInfo


@click.group(
    epilog=examples(
        (
            "Register conda.yml as the environment sk and build its virtualenv",
            "modelport environment create --name sk --file conda.yml\nmodelport environment build sk",
        ),
    )
)
def environment() -> None:
    """Register environments (requirements.txt or conda YAML) and build them into virtualenvs."""


def show_info(info: EnvironmentInfo, output: str) -> None:
    if output == "json":
        print_json(info.to_dict())
    else:
        print_fields(info.to_dict(), title=f"environment {info.ref}")


@environment.command(
    "create",
    epilog=examples(
        ("From an Azure ML style conda YAML", "modelport environment create --name sk --file conda.yml"),
        (
            "From a requirements.txt, for Python 3.11",
            "modelport environment create --name sk --file requirements.txt --python 3.11",
        ),
    ),
)
@click.option("--name", "-n", required=True, help="Environment name.")
@click.option(
    "--file", "-f", "file", required=True, type=click.Path(path_type=Path), help="requirements.txt or conda YAML."
)
@click.option("--python", default=None, metavar="X.Y", help="Python version [default: from the file, else this one].")
@click.option("--version", "-v", default=None, help="Version number [default: next].")
@click.option("--description", "-d", default="", help="Free text.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag (repeatable).")
@output_option
@pass_app
def create(
    app: AppContext,
    name: str,
    file: Path,
    python: str | None,
    version: str | None,
    description: str,
    tags: tuple[str, ...],
    output: str,
) -> None:
    """Register a new environment version."""
    info = app.workspace.environments.create(
        name, file, python=python, version=version, description=description, tags=parse_pairs(tags, "--tag")
    )
    if output == "json":
        print_json(info.to_dict())
        return
    click.echo(f"created environment {info.ref} ({len(info.pip_requirements)} pip requirement(s))")
    if info.conda_only:
        click.echo(f"note: conda-only packages are not installed: {', '.join(info.conda_only)}", err=True)


@environment.command(
    "list",
    epilog=examples(
        ("Environments with their latest version", "modelport environment list"),
    ),
)
@click.option("--include-archived", is_flag=True, help="Also list archived environments.")
@output_option
@pass_app
def list_environments(app: AppContext, include_archived: bool, output: str) -> None:
    """List environments with their latest version."""
    infos = app.workspace.environments.list(include_archived)
    if output == "json":
        print_json([i.to_dict() for i in infos])
        return
    print_table(
        ["name", "latest", "kind", "python", "requirements"],
        ((i.name, i.version, i.kind, i.python or "", len(i.pip_requirements)) for i in infos),
    )


@environment.command(
    "versions",
    epilog=examples(
        ("Every version of sk", "modelport environment versions sk"),
    ),
)
@click.argument("name")
@click.option("--include-archived", is_flag=True, help="Also list archived versions.")
@output_option
@pass_app
def versions(app: AppContext, name: str, include_archived: bool, output: str) -> None:
    """List the versions of one environment."""
    infos = app.workspace.environments.versions(name, include_archived)
    if output == "json":
        print_json([i.to_dict() for i in infos])
        return
    print_table(
        ["version", "kind", "python", "content hash", "created"],
        ((i.version, i.kind, i.python or "", i.content_hash[:12], f"{i.created_at:%Y-%m-%d %H:%M:%S}") for i in infos),
        title=f"environment {name}",
    )


@environment.command(
    "show",
    epilog=examples(
        ("Version 2 of sk: its requirements and Python", "modelport environment show sk:2"),
    ),
)
@click.argument("ref")
@output_option
@pass_app
def show(app: AppContext, ref: str, output: str) -> None:
    """Show one environment version."""
    show_info(app.workspace.environments.get(ref), output)


@environment.command(
    "build",
    epilog=examples(
        ("Build (or reuse) the virtualenv of the latest sk", "modelport environment build sk"),
    ),
)
@click.argument("ref")
@output_option
@pass_app
def build(app: AppContext, ref: str, output: str) -> None:
    """Create (or reuse) the isolated virtualenv of an environment version."""
    result = app.workspace.environments.build(ref, log=lambda line: click.echo(line, err=True))
    if output == "json":
        print_json(
            {
                "path": str(result.path),
                "python": str(result.python),
                "reused": result.reused,
                "conda_only": list(result.conda_only),
            }
        )
        return
    click.echo(f"{'reused' if result.reused else 'built'} {result.path}")
    if result.conda_only:
        click.echo(f"note: conda-only packages are not installed: {', '.join(result.conda_only)}", err=True)


add_archive_commands(environment, "environment", lambda app: app.workspace.environments, example="sk")
