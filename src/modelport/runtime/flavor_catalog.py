"""The registered flavors: modelport's own and those outside packages add, found by name.

A flavor is registered as an entry point in the ``modelport.flavors`` group whose object is a
:class:`~modelport.runtime.flavor_contract.Flavor`. An outside package declares, in its
``pyproject.toml``::

    [project.entry-points."modelport.flavors"]
    linear = "linear_flavor:FLAVOR"

modelport's own flavors are listed in the same group of its ``pyproject.toml``, and also in
:data:`BUILTIN`, which a unit test checks against it. Built-ins are read from that table, never
from the installed distribution's metadata, because metadata goes stale: an editable install
keeps the entry points of the day it was installed, and a source checkout on ``PYTHONPATH`` has
none. Outside flavors come from entry points only, skipping modelport's own.

Entry points are read once per process, lazily and only when an outside flavor can matter:
looking up a built-in name (what serving a model does) imports the built-in table alone, so no
command pays for the scan of installed distributions unless it detects a model, lists the flavors
or meets a name that is not built in. A plug-in that cannot be imported, or that is not a
``Flavor``, is reported in one log line naming its entry point and left out; the others work.

Built-ins come first in :data:`BUILTIN`'s order, then outside flavors by name. That order is the
order detectors run in, so an outside flavor never takes a file a built-in recognises, and it
cannot replace a built-in name.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from functools import cache

from modelport.runtime.flavor_contract import FileDetector, Flavor, FolderDetector
from modelport.schema import model_config

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "modelport.flavors"
_OWN_DISTRIBUTION = "modelport"

#: modelport's own flavors, as its pyproject.toml lists them under ``modelport.flavors``.
BUILTIN: dict[str, str] = {
    "onnx": "modelport.registry.flavors.builtin:ONNX",
    "sklearn": "modelport.registry.flavors.builtin:SKLEARN",
    "torch": "modelport.registry.flavors.builtin:TORCH",
    "xgboost": "modelport.registry.flavors.builtin:XGBOOST",
    "lightgbm": "modelport.registry.flavors.builtin:LIGHTGBM",
    "mlflow": "modelport.registry.flavors.builtin:MLFLOW",
    "python": "modelport.registry.flavors.builtin:PYTHON",
    "triton": "modelport.registry.flavors.builtin:TRITON",
    "pipeline": "modelport.registry.flavors.builtin:PIPELINE",
    "custom": "modelport.registry.flavors.builtin:CUSTOM",
}


def get(name: str) -> Flavor | None:
    """The flavor called ``name``, or None; outside flavors are looked for only if it is not built in."""
    if name in BUILTIN:
        return _builtins()[name]
    return _plugins().get(name)


def all_flavors() -> tuple[Flavor, ...]:
    """Every registered flavor: the built-ins in :data:`BUILTIN`'s order, then outside ones by name."""
    return (*_builtins().values(), *_plugins().values())


def names() -> tuple[str, ...]:
    return tuple(flavor.name for flavor in all_flavors())


def loadable_names() -> tuple[str, ...]:
    """The flavors served through a predictor (what a no-code deployment needs)."""
    return tuple(flavor.name for flavor in all_flavors() if flavor.loadable)


@cache
def file_detectors() -> tuple[FileDetector, ...]:
    """Every flavor's file detectors in catalog order, each once (four flavors share the pickle one)."""
    return tuple(dict.fromkeys(d for flavor in all_flavors() for d in flavor.file_detectors))


@cache
def folder_detectors() -> tuple[FolderDetector, ...]:
    return tuple(dict.fromkeys(d for flavor in all_flavors() for d in flavor.folder_detectors))


@cache
def pickle_frameworks() -> dict[str, str]:
    """Top-level module → flavor, for the modules whose classes in a pickle tell its framework."""
    return {module: flavor.name for flavor in all_flavors() for module in flavor.pickle_modules}


def is_tabular(name: str | None) -> bool:
    flavor = get(name) if name else None
    return flavor is not None and flavor.tabular


def default_max_batch_size(name: str | None) -> int | None:
    """What a config-less model of this flavor batches up to, or None for the runtime's default."""
    flavor = get(name) if name else None
    return flavor.max_batch_size if flavor is not None else None


def triton_names(name: str) -> tuple[str | None, str]:
    """``(platform, backend)`` a Triton config uses for flavor ``name``; an unknown flavor is its own backend."""
    flavor = get(name)
    return (flavor.triton_platform, flavor.triton_backend or name) if flavor else (None, name)


def flavor_of_triton(platform: str | None, backend: str | None, model_type: str | None) -> str | None:
    """The flavor a Triton config names: its platform, else FIL's ``model_type``, else its backend
    (an unknown backend names itself, so ``backend: sklearn`` is the sklearn flavor)."""
    if platform is not None and (found := _first(lambda flavor: flavor.triton_platform == platform)):
        return found
    if backend == "fil":
        return _first(lambda flavor: model_type in flavor.fil_model_types)
    if backend is None:
        return None
    return _first(lambda flavor: flavor.triton_backend == backend) or backend


def _first(test: Callable[[Flavor], bool]) -> str | None:
    """The first flavor passing ``test``; outside flavors are read only when no built-in passes."""
    for flavors in (_builtins, _plugins):
        for flavor in flavors().values():
            if test(flavor):
                return flavor.name
    return None


@cache
def _builtins() -> dict[str, Flavor]:
    return {name: _resolve(target) for name, target in BUILTIN.items()}


def _resolve(target: str) -> Flavor:
    module, _, attribute = target.partition(":")
    flavor = getattr(importlib.import_module(module), attribute)
    if not isinstance(flavor, Flavor):
        raise TypeError(f"{target} is a {type(flavor).__name__}, not a Flavor")
    return flavor


@cache
def _plugins() -> dict[str, Flavor]:
    """Outside flavors from entry points; a broken one is one log line and is left out."""
    from importlib.metadata import entry_points

    found: dict[str, Flavor] = {}
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        distribution = entry.dist.name if entry.dist is not None else "?"
        if distribution == _OWN_DISTRIBUTION:
            continue  # modelport's own entry points: BUILTIN holds them, up to date
        where = f"{entry.name} = {entry.value} ({distribution})"
        if entry.name in BUILTIN or entry.name in found:
            log.warning("flavor plug-in %s: the name %r is already registered; ignored", where, entry.name)
            continue
        try:
            flavor = entry.load()
        except Exception as exc:  # an import error, or anything its module raises: report, go on
            log.warning("flavor plug-in %s cannot be loaded: %s: %s", where, type(exc).__name__, exc)
            continue
        if not isinstance(flavor, Flavor) or flavor.name != entry.name:
            log.warning("flavor plug-in %s: not a Flavor named %r; ignored", where, entry.name)
            continue
        found[entry.name] = flavor
    return found


model_config.use_triton_names(sys.modules[__name__])  # this module is the TritonNames
