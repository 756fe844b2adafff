"""Rendering for humans (rich tables) and scripts (``--output json``), and option parsing helpers."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

console = Console()

output_option = click.option(
    "--output", "-o", "output", type=click.Choice(["table", "json"]), default="table", show_default=True,
    help="table for people, json for scripts.",
)


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


def print_fields(fields: dict[str, Any], title: str | None = None) -> None:
    """A two-column key/value table: ``show`` output for one object."""
    print_table(["field", "value"], ((key, _cell(value)) for key, value in fields.items()), title)


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def parse_pairs(values: Sequence[str], option: str) -> dict[str, str]:
    """``--tag k=v`` repeated → ``{"k": "v"}``; a value without ``=`` is a usage error (exit 2)."""
    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        result[key] = value
    return result


def add_archive_commands(group: click.Group, noun: str, registry: Callable[[Any], Any], example: str) -> None:
    """``archive`` and ``restore`` for a versioned asset group; ``registry(app)`` picks the registry,
    ``example`` names an asset in the help's examples."""
    from modelport.cli.context import pass_app
    from modelport.cli.examples import examples

    @group.command("archive", epilog=examples(
        (f"Hide version 1 of {example}", f"modelport {noun} archive {example}:1"),
        (f"Hide the whole {noun}", f"modelport {noun} archive {example}"),
    ))
    @click.argument("ref")
    @pass_app
    def archive(app: Any, ref: str) -> None:
        registry(app).archive(ref)
        click.echo(f"archived {ref}")

    archive.help = f"Hide a {noun} (NAME) or one version (NAME:V) from lists; it still resolves."

    @group.command("restore", epilog=examples(
        (f"Show version 1 of {example} in lists again", f"modelport {noun} restore {example}:1"),
    ))
    @click.argument("ref")
    @pass_app
    def restore(app: Any, ref: str) -> None:
        registry(app).restore(ref)
        click.echo(f"restored {ref}")

    restore.help = f"Undo archive: show the {noun} or version in lists again."
