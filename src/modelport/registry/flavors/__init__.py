"""Work out what a model file or folder is: its flavor, framework version and signature.

Registering a model must never run it. Pickles execute arbitrary code when loaded, and the
frameworks that read the other formats are optional extras that may be missing (or be the wrong
version) on the machine that registers. So every format is read as data: ONNX through its
protobuf schema, pickles by replaying their opcodes on inert placeholders (nothing is imported
or called), archives by listing their members, text and JSON models by their first and last
bytes, Python entry scripts with :mod:`ast`. Versions and signatures are reported only when the
model itself records them; nothing is guessed from the packages installed here.

Every result carries ``details["format"]`` when the bytes were recognised (``onnx``, ``pickle``,
``joblib``, ``xgboost-json``, ``xgboost-ubj``, ``lightgbm-text``, ``torch-zip``, ``mlflow``,
``triton``, ``python``). An explicit flavor is checked against it: a pickle can be loaded by
several frameworks, an ONNX graph only by ``onnx``; unrecognised bytes fit any flavor except the
self-describing ones (``onnx``, ``mlflow``, ``triton``, ``python``), which are verified.

What a flavor recognises is its own: every registered flavor
(:class:`~modelport.runtime.flavor_contract.Flavor`, modelport's and outside packages', see
:mod:`modelport.runtime.flavor_catalog`) lists its file and folder detectors, and detection asks
the catalog for them. One module per job: :mod:`.folders` and :mod:`.files` decide what to look
at and run the detectors, one module per format family reads it (:mod:`.onnx`, :mod:`.pickles`
over :mod:`.pickle_walker` and :mod:`.streams`, :mod:`.trees`, :mod:`.torch`, :mod:`.mlflow`,
:mod:`.triton`, :mod:`.scripts`), :mod:`.builtin` makes modelport's own flavors of them,
:mod:`.explicit` checks an explicit flavor against the result, and
:mod:`modelport.runtime.flavor_info` holds what is reported.
:mod:`.pickle_imports` walks every pickle of a registration to its end and names what it imports
beyond the modules model pickles need (``model register`` warns about them).
"""

from __future__ import annotations

from pathlib import Path

from modelport.core.datatypes import DATATYPES
from modelport.core.errors import ValidationError
from modelport.registry.flavors.explicit import adopt
from modelport.registry.flavors.files import sniff
from modelport.registry.flavors.folders import detect_folder
from modelport.runtime import flavor_catalog
from modelport.runtime.flavor_info import FlavorInfo, Signature, TensorSpec

__all__ = ["DATATYPES", "FLAVORS", "FlavorInfo", "Signature", "TensorSpec", "detect"]

#: modelport's own flavors; :func:`modelport.runtime.flavor_catalog.names` adds outside ones.
FLAVORS: tuple[str, ...] = tuple(flavor_catalog.BUILTIN)


def detect(path: Path | str, flavor: str | None = None) -> FlavorInfo:
    """Say what the model at ``path`` is, reading it as data only.

    ``flavor`` overrides detection, but must fit the content: an explicit flavor that the
    recognised format cannot be loaded by (``onnx`` for a pickle, ``sklearn`` for an ONNX graph,
    ``mlflow`` for a folder without ``MLmodel``) is a :class:`ValidationError` naming the path.
    Metadata is kept when the explicit flavor is the detected one; when it differs but still
    fits (``xgboost`` for a pickled sklearn pipeline), the signature and details are kept and
    ``details["detected_flavor"]`` says what detection found.
    """
    own = None if flavor is None else flavor_catalog.get(flavor)
    if flavor is not None and own is None:
        raise ValidationError(f"flavor: {flavor!r} is not one of {', '.join(flavor_catalog.names())}")
    path = Path(path)
    try:
        if path.is_dir():
            return detect_folder(path, flavor)
        if path.is_file():
            info = own.claim_file(path) if own and own.claim_file else sniff(path, strict=flavor is None)
            return adopt(info, flavor, path)
    except OSError as exc:
        where = exc.filename or path
        raise ValidationError(f"{where}: cannot be read ({exc.strerror or exc})") from exc
    if path.exists():
        raise ValidationError(f"{path}: is neither a regular file nor a folder")
    raise ValidationError(f"{path}: no such file or folder")
