"""What a pickle imports beyond what model pickles need: the warning ``model register`` gives.

Unpickling imports every ``module.name`` the stream names and may call it with arguments of the
file's choosing: ``os.system`` in a REDUCE runs a shell command the moment the file is loaded,
which for a served model means inside the server, with its rights. A pickle is code, and no
check makes it safe to load; what registration can do is say when a file reaches for something
no machine-learning pickle needs, so that a tampered or unexpected file is noticed before it is
served.

The list allows by module: the scientific stack (``numpy``, ``scipy``, ``joblib``, ``pandas``,
...) and the frameworks whose models are pickled (each registered flavor's ``pickle_modules``:
``sklearn``, ``xgboost``, ``lightgbm``, ``torch``),
the standard containers and reconstructors pickle itself uses (``collections``, ``copyreg``,
``_codecs``, ``datetime``, ...) and a handful of plain ``builtins`` constructors. Everything
else (``os``, ``subprocess``, ``builtins.eval``, ``importlib``, a user's ``__main__.MyModel``)
is reported by name, as are the few names inside allowed packages that read files or run code
(``numpy.testing``, ``pandas.read_pickle``, ``pandas.eval``, ``joblib.load``, ...). A file whose
walk stops before its end (damaged, lz4-compressed, or built to stop a reader) is reported as
uninspected, since anything may follow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from modelport.registry.flavors.pickles import walk_pickle
from modelport.runtime import flavor_catalog

_HEAD_BYTES = 256

#: Top-level modules whose names a model pickle may import, beside the flavors' pickle modules.
SAFE_MODULES = frozenset(
    {
        "numpy",
        "scipy",
        "joblib",
        "catboost",
        "pandas",
        "pyarrow",
        "ml_dtypes",
        "collections",
        "copyreg",
        "copy_reg",
        "_codecs",
        "datetime",
        "decimal",
        "fractions",
        "functools",
    }
)
#: The ``builtins`` (``__builtin__`` under protocol 2) that only build values.
SAFE_BUILTINS = frozenset(
    {
        "bool",
        "bytearray",
        "bytes",
        "complex",
        "dict",
        "float",
        "frozenset",
        "int",
        "list",
        "object",
        "range",
        "set",
        "slice",
        "str",
        "tuple",
    }
)
# Inside allowed packages: names (or prefixes of names) that load files or evaluate code.
_UNSAFE_INSIDE = (
    "numpy.testing",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.load",
    "numpy.lib.npyio",
    "numpy.fromfile",
    "pandas.read_",
    "pandas.io",
    "pandas.eval",
    "pandas.core.computation",
    "pandas.testing",
    "scipy.io",
    "joblib.load",
    "joblib.parallel",
    "joblib._store_backends",
    "torch.hub",
    "torch.load",
    "torch.serialization",
    "torch.jit",
    "torch.package",
    "torch.utils.cpp_extension",
)


@dataclass
class PickleFindings:
    """Per file (relative path): the imports outside the safe list, and the pickles not walked to the end."""

    unsafe_imports: dict[str, list[str]] = field(default_factory=dict)
    uninspected: list[str] = field(default_factory=list)

    def to_details(self) -> dict:
        """The keys added to a model version's ``details`` (none when nothing was found)."""
        details: dict = {}
        if self.unsafe_imports:
            details["unsafe_imports"] = self.unsafe_imports
        if self.uninspected:
            details["uninspected_pickles"] = self.uninspected
        return details


def inspect_pickles(files: Iterable[tuple[str, Path]]) -> PickleFindings:
    """Walk every pickle or joblib file among ``files`` (relative name, path) to its end, unloaded."""
    findings = PickleFindings()
    for relative, path in files:
        with path.open("rb") as handle:
            head = handle.read(_HEAD_BYTES)
        found = walk_pickle(path, head, whole=True)
        if found is None:
            continue
        facts, _ = found
        if facts is None or not facts.complete:
            findings.uninspected.append(relative)
        if facts is not None:
            unsafe = sorted(imported for imported in facts.imports if not is_safe_import(imported))
            if unsafe:
                findings.unsafe_imports[relative] = unsafe
    return findings


def is_safe_import(qualified: str) -> bool:
    """Whether ``module.name`` is something a model pickle may import (see the module docstring)."""
    if qualified.startswith(_UNSAFE_INSIDE):
        return False
    top, _, rest = qualified.partition(".")
    if top in ("builtins", "__builtin__"):
        return rest in SAFE_BUILTINS
    return top in SAFE_MODULES or top in flavor_catalog.pickle_frameworks()
