"""``modelport model ...``: the model registry from the shell."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from modelport.cli.context import AppContext, pass_app
from modelport.cli.examples import examples
from modelport.cli.output import add_archive_commands, output_option, parse_pairs, print_fields, print_json, print_table
from modelport.core.errors import ValidationError

if TYPE_CHECKING:
    from modelport.registry.models import ModelInfo


@click.group(
    epilog=examples(
        (
            "Register a version, name it prod and fetch it",
            "modelport model register ./model.onnx --name fraud\nmodelport model alias set fraud prod 1\n"
            "modelport model download fraud@prod --to ./out",
        ),
    )
)
def model() -> None:
    """Register, find and fetch model versions (NAME, NAME:VERSION or NAME@ALIAS)."""


def show_info(info: ModelInfo, output: str, used_by: list[str] | None = None) -> None:
    """A version's fields; ``used_by``: the pipelines pinning it (lineage), when asked for."""
    if output == "json":
        print_json({**info.to_dict(), **({} if used_by is None else {"used_by": used_by})})
        return
    fields = info.to_dict()
    if used_by:
        fields["used_by"] = ", ".join(used_by)
    fields["files"] = [f"{f['path']} ({f['size']} B)" for f in info.files]
    if info.signature:
        fields["signature"] = "; ".join(
            f"{side} " + ", ".join(f"{t['name']} {t['datatype']}{t['shape']}" for t in info.signature[side])
            for side in ("inputs", "outputs")
        )
    print_fields(fields, title=f"model {info.ref}")


@model.command(
    "register",
    epilog=examples(
        (
            "Register an ONNX file; the flavor is detected",
            "modelport model register ./model.onnx --name fraud --tag team=risk",
        ),
        (
            "A scikit-learn pickle, with a description",
            "modelport model register model.pkl --name iris -d 'logistic regression'",
        ),
        (
            "A folder (an MLflow model, a Triton model...) as version 3",
            "modelport model register ./model_dir --name fraud --version 3",
        ),
    ),
)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", "-n", required=True, help="Model name.")
@click.option("--version", "-v", default=None, help="Version number [default: next].")
@click.option(
    "--flavor",
    "-f",
    default=None,
    help="onnx, sklearn, torch, xgboost, lightgbm, mlflow, python, triton, pipeline, custom, or an installed plug-in's "
    "[default: detected].",
)
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag (repeatable).")
@click.option("--property", "properties", multiple=True, metavar="KEY=VALUE", help="Property (repeatable).")
@click.option("--description", "-d", default="", help="Free text.")
@click.option("--allow-duplicate", is_flag=True, help="Register content identical to an existing version.")
@click.option(
    "--follow-symlinks",
    is_flag=True,
    help="Store what symbolic links inside the folder point to [default: refuse such a folder].",
)
@click.option(
    "--input-example",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A sample input (.json, .csv, .npy, .parquet) the input signature is inferred from: a table is "
    "one input-0 of shape [-1, columns] in its datatype.",
)
@click.option(
    "--signature",
    "signature_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A YAML/JSON file listing inputs and outputs ({name, datatype, shape}, or MLflow's form).",
)
@output_option
@pass_app
def register(
    app: AppContext,
    path: Path,
    name: str,
    version: str | None,
    flavor: str | None,
    tags: tuple[str, ...],
    properties: tuple[str, ...],
    description: str,
    allow_duplicate: bool,
    follow_symlinks: bool,
    input_example: Path | None,
    signature_file: Path | None,
    output: str,
) -> None:
    """Register a model file or folder as a new version.

    Pickled and tree models record no signature: give one with --input-example or --signature, and
    serving types the model's input after it (an FP32 example makes an FP32 input)."""
    from modelport.registry.flavors.signatures import signature_from_example, signature_from_file

    if input_example is not None and signature_file is not None:
        raise ValidationError("--input-example, --signature: give one of them, not both")
    signature = (
        signature_from_example(input_example)
        if input_example is not None
        else signature_from_file(signature_file)
        if signature_file is not None
        else None
    )
    info = app.workspace.models.register(
        path,
        name,
        version=version,
        flavor=flavor,
        tags=parse_pairs(tags, "--tag"),
        properties=parse_pairs(properties, "--property"),
        description=description,
        allow_duplicate=allow_duplicate,
        follow_symlinks=follow_symlinks,
        signature=signature,
    )
    warn_about_pickles(info)
    if output == "json":
        print_json(info.to_dict())
    else:
        click.echo(f"registered {info.ref} ({info.flavor}, {len(info.files)} file(s), sha256 {info.digest[:12]})")


def warn_about_pickles(info: ModelInfo) -> None:
    """One stderr line per finding of :mod:`modelport.registry.flavors.pickle_imports`: a warning, not an error."""
    for file, names in info.details.get("unsafe_imports", {}).items():
        for name in names:
            click.echo(
                f"warning: {file} imports {name}, outside the modules model pickles need; "
                "a pickle runs code when it is loaded, and serving this model loads it",
                err=True,
            )
    for file in info.details.get("uninspected_pickles", []):
        click.echo(
            f"warning: {file} is a pickle that could not be inspected to its end; "
            "a pickle runs code when it is loaded, so serve it only if you trust its source",
            err=True,
        )


@model.command(
    "list",
    epilog=examples(
        ("Models with their latest version", "modelport model list"),
        ("Archived ones too, as JSON", "modelport model list --include-archived -o json"),
    ),
)
@click.option("--include-archived", is_flag=True, help="Also list archived models.")
@output_option
@pass_app
def list_models(app: AppContext, include_archived: bool, output: str) -> None:
    """List models with their latest version."""
    models = app.workspace.models.list(include_archived)
    if output == "json":
        print_json([m.to_dict() for m in models])
        return
    print_table(
        ["name", "latest", "versions", "flavor", "archived"],
        ((m.name, m.latest_version, m.version_count, m.flavor, m.archived) for m in models),
    )


@model.command(
    "versions",
    epilog=examples(
        ("Every version of fraud", "modelport model versions fraud"),
    ),
)
@click.argument("name")
@click.option("--include-archived", is_flag=True, help="Also list archived versions.")
@output_option
@pass_app
def versions(app: AppContext, name: str, include_archived: bool, output: str) -> None:
    """List the versions of one model."""
    infos = app.workspace.models.versions(name, include_archived)
    if output == "json":
        print_json([i.to_dict() for i in infos])
        return
    print_table(
        ["version", "flavor", "aliases", "size", "created", "description"],
        (
            (i.version, i.flavor, ",".join(i.aliases), i.size, f"{i.created_at:%Y-%m-%d %H:%M:%S}", i.description)
            for i in infos
        ),
        title=f"model {name}",
    )


@model.command(
    "show",
    epilog=examples(
        ("The version prod points at", "modelport model show fraud@prod"),
        ("Version 2, as JSON (signature, files, sha256s)", "modelport model show fraud:2 -o json"),
    ),
)
@click.argument("ref")
@output_option
@pass_app
def show(app: AppContext, ref: str, output: str) -> None:
    """Show one version: flavor, signature, files, hashes, and the pipelines that pin it."""
    info = app.workspace.models.get(ref)
    show_info(info, output, app.workspace.models.pipelines_using(info.ref))


@model.command(
    "download",
    epilog=examples(
        ("A verified copy of fraud@prod, yours to edit", "modelport model download fraud@prod --to ./out"),
    ),
)
@click.argument("ref")
@click.option("--to", "to", required=True, type=click.Path(path_type=Path), help="Destination folder.")
@pass_app
def download(app: AppContext, ref: str, to: Path) -> None:
    """Copy a version's file or folder into a folder, verifying every byte."""
    click.echo(str(app.workspace.models.download(ref, to)))


@model.command(
    "path",
    epilog=examples(
        ("Where the latest version of fraud is", "modelport model path fraud"),
        ("Hand it to a program", 'python evaluate.py --model "$(modelport model path fraud@prod)"'),
    ),
)
@click.argument("ref")
@pass_app
def path(app: AppContext, ref: str) -> None:
    """Print a local, verified path to a version's file or folder."""
    click.echo(str(app.workspace.models.path(ref)))


@model.command(
    "update",
    epilog=examples(
        ("Tag version 2 and drop a tag", "modelport model update fraud:2 --tag stage=prod --remove-tag draft"),
        ("Describe it", "modelport model update fraud:2 -d 'retrained on March data'"),
    ),
)
@click.argument("ref")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Set a tag (repeatable).")
@click.option("--remove-tag", "remove_tags", multiple=True, metavar="KEY", help="Remove a tag (repeatable).")
@click.option("--description", "-d", default=None, help="New description.")
@output_option
@pass_app
def update(
    app: AppContext, ref: str, tags: tuple[str, ...], remove_tags: tuple[str, ...], description: str | None, output: str
) -> None:
    """Change tags or description (files and flavor are immutable)."""
    info = app.workspace.models.update(
        ref, tags=parse_pairs(tags, "--tag"), remove_tags=list(remove_tags), description=description
    )
    show_info(info, output)


@model.command(
    "delete",
    epilog=examples(
        ("Delete version 1 of fraud", "modelport model delete fraud:1"),
    ),
)
@click.argument("ref")
@pass_app
def delete(app: AppContext, ref: str) -> None:
    """Delete one version (NAME:VERSION or NAME@ALIAS) and the files only it used."""
    info = app.workspace.models.delete(ref)
    click.echo(f"deleted {info.ref}")


@model.group(
    "alias",
    epilog=examples(
        ("Promote version 3 to prod", "modelport model alias set fraud prod 3"),
    ),
)
def alias() -> None:
    """Point names like ``prod`` at versions."""


@alias.command(
    "set",
    epilog=examples(
        ("Point fraud@prod at version 3", "modelport model alias set fraud prod 3"),
        ("Point fraud@canary at the latest version", "modelport model alias set fraud canary"),
    ),
)
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.argument("version", required=False)
@pass_app
def alias_set(app: AppContext, name: str, alias_name: str, version: str | None) -> None:
    """Point ALIAS at VERSION (default: latest)."""
    info = app.workspace.models.set_alias(name, alias_name, version)
    click.echo(f"{name}@{alias_name} -> {info.ref}")


@alias.command(
    "delete",
    epilog=examples(
        ("Remove fraud@canary (the version stays)", "modelport model alias delete fraud canary"),
    ),
)
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@pass_app
def alias_delete(app: AppContext, name: str, alias_name: str) -> None:
    """Remove an alias."""
    app.workspace.models.delete_alias(name, alias_name)
    click.echo(f"deleted alias {name}@{alias_name}")


add_archive_commands(model, "model", lambda app: app.workspace.models, example="fraud")
