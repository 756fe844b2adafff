"""``modelport model ...``: the model registry from the shell."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from modelport.cli.context import AppContext, pass_app
from modelport.cli.output import add_archive_commands, output_option, parse_pairs, print_fields, print_json, print_table

if TYPE_CHECKING:
    from modelport.registry.models import ModelInfo


@click.group()
def model() -> None:
    """Register, find and fetch model versions (NAME, NAME:VERSION or NAME@ALIAS)."""


def show_info(info: ModelInfo, output: str) -> None:
    if output == "json":
        print_json(info.to_dict())
        return
    fields = info.to_dict()
    fields["files"] = [f"{f['path']} ({f['size']} B)" for f in info.files]
    if info.signature:
        fields["signature"] = "; ".join(
            f"{side} " + ", ".join(f"{t['name']} {t['datatype']}{t['shape']}" for t in info.signature[side])
            for side in ("inputs", "outputs")
        )
    print_fields(fields, title=f"model {info.ref}")


@model.command("register")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", "-n", required=True, help="Model name.")
@click.option("--version", "-v", default=None, help="Version number [default: next].")
@click.option("--flavor", "-f", default=None, help="onnx, sklearn, torch, xgboost, lightgbm, mlflow, python, triton, custom [default: detected].")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag (repeatable).")
@click.option("--property", "properties", multiple=True, metavar="KEY=VALUE", help="Property (repeatable).")
@click.option("--description", "-d", default="", help="Free text.")
@click.option("--allow-duplicate", is_flag=True, help="Register content identical to an existing version.")
@click.option("--follow-symlinks", is_flag=True,
              help="Store what symbolic links inside the folder point to [default: refuse such a folder].")
@output_option
@pass_app
def register(app: AppContext, path: Path, name: str, version: str | None, flavor: str | None,
             tags: tuple[str, ...], properties: tuple[str, ...], description: str, allow_duplicate: bool,
             follow_symlinks: bool, output: str) -> None:
    """Register a model file or folder as a new version."""
    info = app.workspace.models.register(
        path, name, version=version, flavor=flavor, tags=parse_pairs(tags, "--tag"),
        properties=parse_pairs(properties, "--property"), description=description,
        allow_duplicate=allow_duplicate, follow_symlinks=follow_symlinks,
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
            click.echo(f"warning: {file} imports {name}, outside the modules model pickles need; "
                       "a pickle runs code when it is loaded, and serving this model loads it", err=True)
    for file in info.details.get("uninspected_pickles", []):
        click.echo(f"warning: {file} is a pickle that could not be inspected to its end; "
                   "a pickle runs code when it is loaded, so serve it only if you trust its source", err=True)


@model.command("list")
@click.option("--include-archived", is_flag=True, help="Also list archived models.")
@output_option
@pass_app
def list_models(app: AppContext, include_archived: bool, output: str) -> None:
    """List models with their latest version."""
    models = app.workspace.models.list(include_archived)
    if output == "json":
        print_json([m.to_dict() for m in models])
        return
    print_table(["name", "latest", "versions", "flavor", "archived"],
                ((m.name, m.latest_version, m.version_count, m.flavor, m.archived) for m in models))


@model.command("versions")
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
    print_table(["version", "flavor", "aliases", "size", "created", "description"],
                ((i.version, i.flavor, ",".join(i.aliases), i.size, f"{i.created_at:%Y-%m-%d %H:%M:%S}", i.description)
                 for i in infos), title=f"model {name}")


@model.command("show")
@click.argument("ref")
@output_option
@pass_app
def show(app: AppContext, ref: str, output: str) -> None:
    """Show one version: flavor, signature, files, hashes."""
    show_info(app.workspace.models.get(ref), output)


@model.command("download")
@click.argument("ref")
@click.option("--to", "to", required=True, type=click.Path(path_type=Path), help="Destination folder.")
@pass_app
def download(app: AppContext, ref: str, to: Path) -> None:
    """Copy a version's file or folder into a folder, verifying every byte."""
    click.echo(str(app.workspace.models.download(ref, to)))


@model.command("path")
@click.argument("ref")
@pass_app
def path(app: AppContext, ref: str) -> None:
    """Print a local, verified path to a version's file or folder."""
    click.echo(str(app.workspace.models.path(ref)))


@model.command("update")
@click.argument("ref")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Set a tag (repeatable).")
@click.option("--remove-tag", "remove_tags", multiple=True, metavar="KEY", help="Remove a tag (repeatable).")
@click.option("--description", "-d", default=None, help="New description.")
@output_option
@pass_app
def update(app: AppContext, ref: str, tags: tuple[str, ...], remove_tags: tuple[str, ...],
           description: str | None, output: str) -> None:
    """Change tags or description (files and flavor are immutable)."""
    info = app.workspace.models.update(ref, tags=parse_pairs(tags, "--tag"), remove_tags=list(remove_tags),
                                       description=description)
    show_info(info, output)


@model.command("delete")
@click.argument("ref")
@pass_app
def delete(app: AppContext, ref: str) -> None:
    """Delete one version (NAME:VERSION or NAME@ALIAS) and the files only it used."""
    info = app.workspace.models.delete(ref)
    click.echo(f"deleted {info.ref}")


@model.group("alias")
def alias() -> None:
    """Point names like ``prod`` at versions."""


@alias.command("set")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.argument("version", required=False)
@pass_app
def alias_set(app: AppContext, name: str, alias_name: str, version: str | None) -> None:
    """Point ALIAS at VERSION (default: latest)."""
    info = app.workspace.models.set_alias(name, alias_name, version)
    click.echo(f"{name}@{alias_name} -> {info.ref}")


@alias.command("delete")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@pass_app
def alias_delete(app: AppContext, name: str, alias_name: str) -> None:
    """Remove an alias."""
    app.workspace.models.delete_alias(name, alias_name)
    click.echo(f"deleted alias {name}@{alias_name}")


add_archive_commands(model, "model", lambda app: app.workspace.models)
