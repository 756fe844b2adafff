"""Pickle and joblib files, compressed or not, recognised without unpickling them.

Unpickling runs whatever code the file names, so a pickle is only ever walked as opcodes
(:mod:`.pickle_walker`) to find the framework, estimator class and sklearn version it records.
"""

from __future__ import annotations

import re
from pathlib import Path

from modelport.registry.flavors.pickle_walker import UNREADABLE, PickleFacts, scan_pickle
from modelport.registry.flavors.streams import Inflated, open_stream, sniff_compression
from modelport.runtime.flavor_info import FlavorInfo, version_text

_PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib"})
_PICKLE_HEADER = re.compile(rb"\x80[\x02-\x05]")  # PROTO opcode, protocols 2 to 5


def pickled_model(path: Path, head: bytes) -> FlavorInfo | None:
    """Pickles and joblib files, compressed or not, recognised without unpickling.

    lz4-compressed joblib files are reported as uninspected (see :func:`walk_pickle`).
    """
    found = walk_pickle(path, head)
    if found is None:
        return None
    facts, compression = found
    if facts is None:
        return FlavorInfo(
            "custom",
            None,
            None,
            {
                "format": "joblib",
                "compression": "lz4",
                "note": "lz4-compressed: contents not inspected",
            },
        )
    joblib = facts.joblib or compression is not None or path.suffix.lower() == ".joblib"
    details: dict = {"format": "joblib" if joblib else "pickle"}
    if compression is not None:
        details["compression"] = compression
    if facts.estimator is not None:
        details["estimator"] = facts.estimator
    flavor = facts.framework or "custom"
    version = version_text(facts.sklearn_version) if flavor == "sklearn" else None
    return FlavorInfo(flavor, version, None, details)


def walk_pickle(path: Path, head: bytes, *, whole: bool = False) -> tuple[PickleFacts | None, str | None] | None:
    """``(facts, compression)`` of a pickle or joblib file, or None when ``path`` is neither.

    Protocol 2+ pickles announce themselves; protocol 0/1 pickles are taken on their extension.
    Compressed streams are inflated as they are read. lz4 (joblib's only non-stdlib codec)
    cannot be, so such a file comes back with no facts. ``whole`` walks to the end (see
    :func:`scan_pickle`).
    """
    compression = sniff_compression(head)
    named_pickle = path.suffix.lower() in _PICKLE_SUFFIXES
    if compression == "lz4":
        return (None, compression) if named_pickle else None
    if compression is None and not (named_pickle or _PICKLE_HEADER.match(head)):
        return None
    with open_stream(path, compression) as stream:
        if compression is not None and not named_pickle and not _PICKLE_HEADER.match(_peek(stream)):
            return None
        facts = scan_pickle(stream, whole=whole)
    if not (facts.saw_global or facts.complete):
        return None
    return facts, compression


def _peek(stream: Inflated) -> bytes:
    """The first two bytes of an inflated stream, or none if it cannot even be started."""
    try:
        return stream.peek(2)[:2]
    except UNREADABLE:
        return b""
