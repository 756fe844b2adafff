"""Reading ``router.yml`` and the key files it points to, and noticing when any of them changes.

The keys are files (``keys_dir/primary``, ``keys_dir/secondary``: a Kubernetes Secret mounted as a
volume), never part of the configuration. Kubernetes updates a mounted ConfigMap or Secret by
writing a new folder and swapping the ``..data`` symlink over to it, so neither file's path
changes: a change is seen by ``stat``-ing through the links (the resolved file's identity, size
and mtime) and the folders holding them (whose entries the swap changes). An editor's or a
script's atomic rename changes the file's inode the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from modelport.core.errors import ValidationError
from modelport.core.keys import KEY_NAMES
from modelport.schema.base import parse
from modelport.schema.choices import AuthMode
from modelport.schema.router_config import RouterConfig

# What identifies one version of a file: device, inode, size, mtime; None while it is missing.
Stamp = tuple[int, int, int, int] | None


@dataclass(frozen=True)
class Loaded:
    """One consistent reading: the configuration and the endpoint's two keys (empty for
    ``auth_mode: none``, or for a key file that is absent)."""

    config: RouterConfig
    keys: tuple[str, str]


def load(path: Path) -> Loaded:
    """``router.yml`` at ``path`` and its keys; a one-line ValidationError naming the file and
    the field otherwise."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"--config: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"--config: cannot read {path} ({exc})") from None
    except yaml.YAMLError as exc:
        raise ValidationError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    try:
        config = parse(RouterConfig, data).value
    except ValidationError as exc:
        raise ValidationError(f"{path}: {exc}") from None
    return Loaded(config, _keys(path, config))


def watched(path: Path, config: RouterConfig | None) -> list[Path]:
    """The files and folders whose change means reading everything again."""
    paths = [path, path.absolute().parent]
    if config is not None and config.keys_dir is not None:
        folder = keys_dir(path, config.keys_dir)
        paths += [folder, *(folder / name for name in KEY_NAMES)]
    return paths


def stamps(paths: list[Path]) -> tuple[Stamp, ...]:
    return tuple(_stamp(path) for path in paths)


def keys_dir(path: Path, keys_dir: str) -> Path:
    """``keys_dir`` as written; a relative one starts from the configuration file's folder."""
    return path.absolute().parent / keys_dir


def _keys(path: Path, config: RouterConfig) -> tuple[str, str]:
    if config.auth_mode is not AuthMode.KEY or config.keys_dir is None:
        return "", ""
    folder = keys_dir(path, config.keys_dir)
    found: list[str] = []
    for name in KEY_NAMES:
        try:
            found.append((folder / name).read_text("utf-8").strip())
        except FileNotFoundError:
            found.append("")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationError(f"{path}: keys_dir: cannot read {folder / name} ({exc})") from None
    if not any(found):
        raise ValidationError(f"{path}: keys_dir: no key in {folder} (files {' and '.join(KEY_NAMES)})")
    return found[0], found[1]


def _stamp(path: Path) -> Stamp:
    try:
        info = os.stat(path)  # follows symlinks: the file ..data points at now
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns
