"""Objects as YAML files, the same bytes for the same objects, and the folder they go in.

Keys are sorted, text that spans lines is written as a literal block (a ConfigMap's
``router.yml`` stays readable), and files are named ``<object name>.<kind>.yaml`` and listed
in ``kustomization.yaml`` in sorted order. The folder is written whole or not at all: files go
to a locked staging folder beside it, which is renamed into place.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from modelport.core.errors import ValidationError
from modelport.core.files import disk_errors, sweep, temp_dir
from modelport.packaging.context import check_output

KUSTOMIZATION = "kustomization.yaml"


class _Dumper(yaml.SafeDumper):
    """Safe YAML with block text for multi-line strings and no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def dump(document: Mapping[str, Any]) -> str:
    return yaml.dump(dict(document), Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=1000)


def file_name(obj: Mapping[str, Any]) -> str:
    return f"{obj['metadata']['name']}.{str(obj['kind']).lower()}.yaml"


def files_of(objects: list[dict[str, Any]], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """File name → text for ``objects`` and the kustomization over them; ``extra`` files are
    written beside them but left out of the kustomization."""
    files = {file_name(obj): dump(obj) for obj in objects}
    if len(files) != len(objects):
        raise ValidationError("objects: two objects of one kind have the same name")
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(files),
    }
    files[KUSTOMIZATION] = dump(kustomization)
    return dict(sorted({**files, **(extra or {})}.items()))


def write(output: Path, files: Mapping[str, str]) -> None:
    """Write ``files`` as the new folder ``output``."""
    check_output(output)
    parent = output.absolute().parent
    with disk_errors(output):
        parent.mkdir(parents=True, exist_ok=True)
        sweep(parent, prefix=f".{output.name}")
        with temp_dir(parent, f".{output.name}") as staging:
            for name, text in files.items():
                (staging / name).write_text(text, encoding="utf-8")
            check_output(output)  # still free: another run may have taken it meanwhile
            if output.is_dir():
                output.rmdir()
            staging.rename(output)
