"""Gradient-boosted tree models in their native files: XGBoost JSON/UBJSON and LightGBM text.

Only the head, the tail and header lines are read: the format shows in the first bytes, the
version in the last (XGBoost) or in the header (LightGBM).
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path
from typing import IO

from modelport.runtime.flavor_info import FlavorInfo

_TAIL_BYTES = 256  # XGBoost's closing "version" array fits in these

# XGBoost writes {"learner": {...}, "version": [major, minor, patch]}: the key order is its own,
# so the head and the tail are enough and a model of any size is never parsed whole.
_XGB_JSON_HEAD = re.compile(rb'\s*\{\s*"learner"\s*:')
_XGB_JSON_TAIL = re.compile(rb'"version"\s*:\s*\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]\s*\}\s*$')
_UBJ_INTS = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q"}


def xgboost_model(path: Path, head: bytes) -> FlavorInfo | None:
    """XGBoost's JSON or UBJSON model, told by its head; the version is read from its tail."""
    if _XGB_JSON_HEAD.match(head):
        fmt = "xgboost-json"
    elif head[:1] == b"{" and head[1:2] in _UBJ_INTS and b"learner" in head[:32]:
        fmt = "xgboost-ubj"
    else:
        return None
    tail = _tail(path)
    if fmt == "xgboost-json":
        match = _XGB_JSON_TAIL.search(tail)
        version = ".".join(part.decode() for part in match.groups()) if match else None
    else:
        version = _ubj_version(tail)
    return FlavorInfo("xgboost", version, None, {"format": fmt})


def _tail(path: Path) -> bytes:
    with path.open("rb") as f:
        f.seek(max(0, f.seek(0, io.SEEK_END) - _TAIL_BYTES))
        return f.read()


def _ubj_version(tail: bytes) -> str | None:
    """Read the ``version`` int array that closes XGBoost's UBJSON document."""
    at = tail.rfind(b"version[")
    if at < 0:
        return None
    buf = io.BytesIO(tail[at + len(b"version[") :])
    try:
        item_type: bytes | None = None
        count: int | None = None
        marker: bytes | None = buf.read(1)
        if marker == b"$":
            item_type, marker = buf.read(1), buf.read(1)
        if marker == b"#":
            count, marker = _ubj_int(buf, buf.read(1)), None
        parts: list[int] = []
        while count is None or len(parts) < count:  # a counted array has no closing "]"
            marker = item_type or marker or buf.read(1)
            if count is None and marker == b"]":
                break
            parts.append(_ubj_int(buf, marker))
            marker = None
    except (KeyError, struct.error):
        return None
    return ".".join(map(str, parts)) if parts and buf.read(1) == b"}" else None


def _ubj_int(buf: IO[bytes], marker: bytes) -> int:
    fmt = _UBJ_INTS[marker]
    return struct.unpack(fmt, buf.read(struct.calcsize(fmt)))[0]


_LIGHTGBM_HEAD = re.compile(rb"tree\r?\n")
_LIGHTGBM_KEYS = ("version", "num_class", "max_feature_idx", "objective")


def lightgbm_model(path: Path, head: bytes) -> FlavorInfo | None:
    """LightGBM's text model: ``tree``, then ``key=value`` header lines before the trees."""
    if not _LIGHTGBM_HEAD.match(head):
        return None
    header: dict[str, str] = {}
    with path.open("rb") as f:
        f.readline()
        for _ in range(64):
            key, sep, value = f.readline(1 << 20).decode("utf-8", "replace").strip().partition("=")
            if not sep or key.startswith("Tree"):
                break
            if key in _LIGHTGBM_KEYS:
                header[key] = value
            if len(header) == len(_LIGHTGBM_KEYS):
                break
    if not re.fullmatch(r"v\d+", header.get("version", "")):
        return None
    details: dict = {"format": "lightgbm-text", "format_version": header["version"]}
    if header.get("num_class", "").isdigit():
        details["num_class"] = int(header["num_class"])
    if header.get("max_feature_idx", "").isdigit():
        details["num_features"] = int(header["max_feature_idx"]) + 1
    if header.get("objective"):
        details["objective"] = header["objective"]
    return FlavorInfo("lightgbm", None, None, details)
