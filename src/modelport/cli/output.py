"""Rendering for humans (rich tables) and scripts (``--output json``), and option parsing helpers.

rich is imported by the first table printed: ``--help``, which imports every command's module to
list them, and JSON output do without it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import click
import orjson

from modelport.core.errors import ValidationError

if TYPE_CHECKING:
    from rich.console import Console

output_option = click.option(
    "--output",
    "-o",
    "output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json for scripts.",
)
yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None, whole: Sequence[str] = ()
) -> None:
    """A table that fits the terminal by folding long values onto more lines, never cutting them;
    the ``whole`` columns (ids that users copy) stay on one line and are never narrowed."""
    from rich.table import Table
    from rich.text import Text

    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    table = Table(title=None if title is None else Text(title), show_lines=False)
    for index, column in enumerate(columns):
        if column in whole:
            widest = max((len(row[index]) for row in cells), default=0)
            table.add_column(Text(column), no_wrap=True, min_width=max(widest, len(column)))
        else:
            table.add_column(Text(column, overflow="ellipsis"), overflow="fold")
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    console().print(table)


@cache
def console() -> Console:
    """The console tables print to. Values are shown as they are: "[red]" is not markup and
    ":100:" is not an emoji."""
    from rich.console import Console

    return Console(emoji=False, markup=False)


def note_ignored(keys: Sequence[str]) -> None:
    """The one wording of the note about definition keys that only mean something in Azure."""
    if keys:
        click.echo(f"note: ignored cloud-only keys: {', '.join(keys)}", err=True)


def confirm_delete(what: str, yes: bool) -> None:
    """Ask before deleting ``what``, as ``az ml ... delete`` does; without a terminal to ask on,
    only ``--yes`` goes ahead (a script must say so)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ValidationError(f"--yes: deleting {what} needs confirmation; pass --yes (-y) when not run interactively")
    click.confirm(f"Delete {what}?", abort=True, err=True)


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

    @group.command(
        "archive",
        epilog=examples(
            (f"Hide version 1 of {example}", f"modelport {noun} archive {example}:1"),
            (f"Hide the whole {noun}", f"modelport {noun} archive {example}"),
        ),
    )
    @click.argument("ref")
    @pass_app
    def archive(app: Any, ref: str) -> None:
        registry(app).archive(ref)
        click.echo(f"archived {ref}")

    archive.help = f"Hide a {noun} (NAME) or one version (NAME:V) from lists; it still resolves."

    @group.command(
        "restore",
        epilog=examples(
            (f"Show version 1 of {example} in lists again", f"modelport {noun} restore {example}:1"),
        ),
    )
    @click.argument("ref")
    @pass_app
    def restore(app: Any, ref: str) -> None:
        registry(app).restore(ref)
        click.echo(f"restored {ref}")

    restore.help = f"Undo archive: show the {noun} or version in lists again."
