"""``package``: the one call behind ``modelport package`` and ``Workspace.package``.

Every check that can refuse the request runs before anything is written: the target, the output
folder, the builder, the base image (with ``build``). The context is then written as a whole
(see :mod:`.context`), built, and saved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelport.core.errors import ConflictError, ValidationError
from modelport.core.version import __version__
from modelport.packaging import context, wheelhouse
from modelport.packaging.builders import Builder, choose
from modelport.packaging.containerfile import Recipe, default_base_image, render
from modelport.packaging.sources import PackageSource, from_deployment, from_file, from_model

if TYPE_CHECKING:
    from modelport.registry.stores import WorkspaceStores


@dataclass(frozen=True)
class PackageResult:
    """What was made: the context folder and its digest, and the image when one was built."""

    output_dir: Path
    digest: str
    labels: dict[str, str]
    image: str | None = None
    builder: str | None = None
    archive: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["output_dir"] = str(self.output_dir)
        data["archive"] = None if self.archive is None else str(self.archive)
        return data


def package(
    ws: WorkspaceStores,
    target: str | None = None,
    *,
    file: str | Path | None = None,
    output_dir: str | Path,
    base_image: str | None = None,
    build: bool = False,
    tag: str | None = None,
    builder: str = "auto",
    save: str | Path | None = None,
    gpu: bool = False,
    note: Callable[[str], None] = lambda line: None,
) -> PackageResult:
    """Package ``target`` (a registered model reference or ``ENDPOINT/DEPLOYMENT``) or ``file``
    (a deployment YAML) as a build context in ``output_dir``; with ``build``, build the image
    (``tag``, default the model's ``name:version``) with ``builder`` and write it to ``save``.
    ``note`` hears progress lines."""
    if (target is None) == (file is None):
        raise ValidationError("package: give a TARGET (a model or ENDPOINT/DEPLOYMENT) or -f deployment.yml, not both")
    output = Path(output_dir)
    context.check_output(output)
    if not build and (save is not None or tag is not None):
        raise ValidationError(f"{'--save' if save is not None else '--tag'}: only used with --build")
    archive = None if save is None else Path(save)
    if archive is not None and (archive.exists() or archive.is_symlink()):
        raise ConflictError(f"--save: {archive} already exists; refusing to overwrite it")
    chosen = choose(builder) if build else None
    source = _source(ws, target, file)
    base = base_image or default_base_image()
    from_image = base if chosen is None else chosen.ensure_base(base)
    labels = _labels(source, base)
    recipe = Recipe(
        from_image, source.env, labels, source.probe, source.code is not None, source.model is not None, gpu
    )
    epoch = context.source_epoch()
    note(f"writing the build context in {output} (wheels for {len(source.requirements)} requirement(s) and modelport)")
    digest = context.write(
        output,
        source,
        lambda folder: wheelhouse.build(folder, source.requirements, source.extras, epoch, gpu),
        render(recipe),
    )
    note(f"context digest sha256:{digest}")
    if chosen is None:
        return PackageResult(output, digest, labels)
    image = tag or source.image
    _build(chosen, output, image, archive, note)
    return PackageResult(output, digest, labels, image, chosen.kind.value, archive)


def _source(ws: WorkspaceStores, target: str | None, file: str | Path | None) -> PackageSource:
    if file is not None:
        return from_file(ws, Path(file))
    assert target is not None
    if "/" in target:
        return from_deployment(ws, target)
    return from_model(ws, target)


def _build(builder: Builder, output: Path, image: str, archive: Path | None, note: Callable[[str], None]) -> None:
    note(f"building {image} with {builder.kind.value}")
    builder.build(output, image)
    if archive is not None:
        note(f"saving {image} to {archive}")
        builder.save(image, archive)


def _labels(source: PackageSource, base: str) -> dict[str, str]:
    """OCI annotations and modelport's own: what the image serves and where it came from."""
    created = datetime.fromtimestamp(context.source_epoch(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {
        "org.opencontainers.image.title": source.image.partition(":")[0],
        "org.opencontainers.image.description": f"modelport serving {source.origin}",
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.base.name": base,
        "modelport.version": __version__,
        "modelport.source": source.origin,
    }
    if source.model is not None:
        labels |= {
            "org.opencontainers.image.version": str(source.model.version),
            "modelport.model.name": source.model.name,
            "modelport.model.version": str(source.model.version),
            "modelport.model.flavor": source.model.flavor,
            "modelport.model.sha256": source.model.digest,
        }
    if source.environment_hash is not None:
        labels["modelport.environment.hash"] = source.environment_hash
    if source.environment is not None:
        labels["modelport.environment"] = source.environment
    return labels
