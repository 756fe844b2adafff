"""``modelport schema NAME``: the JSON Schema of a definition file, for editors and CI checks.

The schemas come from the same models that read the files (:mod:`modelport.schema.published`);
the ones under ``docs/schemas/`` are this command's output.
"""

from __future__ import annotations

from pathlib import Path

import click

from modelport.cli.examples import examples
from modelport.core.errors import ValidationError
from modelport.schema.published import PUBLISHED


@click.command(
    "schema",
    help=f"Print the JSON Schema of a definition file. NAME: {', '.join(PUBLISHED)}.",
    epilog=examples(
        ("The JSON Schema of deployment.yml", "modelport schema deployment"),
        (
            "Write it where an editor finds it (then start deployment.yml with a '$schema:' line naming it)",
            "modelport schema deployment --output .schemas/deployment.json",
        ),
        (
            "The batch deployment's, into the file its $schema line names",
            "modelport schema batch-deployment --output batch-deployment.json",
        ),
    ),
)
@click.argument("name", type=click.Choice(list(PUBLISHED)), metavar="NAME")
@click.option(
    "--output",
    "output",
    type=click.Path(path_type=Path),
    default=None,
    metavar="FILE",
    help="Write it to FILE [default: stdout].",
)
def schema(name: str, output: Path | None) -> None:
    """The schema comes from the model that reads the file, so it accepts what the CLI accepts."""
    from modelport.schema.published import json_schema, render

    text = render(json_schema(name))
    if output is None:
        click.echo(text, nl=False)
        return
    if output.is_dir():
        raise ValidationError(f"--output: {output} is a folder; name a file")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}", err=True)
