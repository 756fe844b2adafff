"""Reading a model file's bytes with bounded memory, whatever its compression or its claims.

Detection reads files that may be damaged or hostile: compressed streams are inflated only as
far as they are read, and lengths a file declares are never allocated up front.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from pathlib import Path
from typing import IO, Any, Protocol

CHUNK = 1 << 20  # the most bytes asked of a stream at once
_MAX_LINE = 16 << 20
# joblib's compress= methods, by magic bytes. zlib's two-byte header is checked by checksum.
_COMPRESSION_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
)


def sniff_compression(head: bytes) -> str | None:
    """The compression a file's first bytes announce (joblib's methods), or None."""
    if head[:1] == b"\x78" and int.from_bytes(head[:2], "big") % 31 == 0:
        return "zlib"
    return next((name for magic, name in _COMPRESSION_MAGIC if head.startswith(magic)), None)


# what open_stream returns: buffered, so a reader can peek at the inflated bytes
Inflated = io.BufferedReader | bz2.BZ2File | lzma.LZMAFile


def open_stream(path: Path, compression: str | None) -> Inflated:
    """The file's bytes, inflated as they are read; lz4 is not supported (not in the stdlib)."""
    if compression == "bz2":
        return bz2.open(path, "rb")
    if compression in ("xz", "lzma"):
        return lzma.open(path, "rb")
    raw = path.open("rb")
    return io.BufferedReader(_Inflater(raw)) if compression else raw


class _Inflater(io.RawIOBase):
    """A zlib or gzip stream, inflated as it is read, never more than the reader asks for."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)  # either header

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._inflate.eof:
            data = self._inflate.unconsumed_tail or self._raw.read(CHUNK)
            if not data:
                break  # truncated: the pickle walk stops where the bytes do
            out = self._inflate.decompress(data, len(view))
            if out:
                view[: len(out)] = out
                return len(out)
        return 0

    def close(self) -> None:
        self._raw.close()
        super().close()


class ByteSource(Protocol):
    """What the pickle walk reads from: a file, or a :class:`ChunkedReader` over one."""

    def read(self, size: int, /) -> bytes: ...

    def readline(self) -> bytes: ...

    def seekable(self) -> bool: ...

    def seek(self, offset: int, whence: int, /) -> int: ...


class ChunkedReader:
    """The stream as genops sees it: memory follows the bytes that exist, not declared lengths.

    Pickle opcodes announce their argument's length and io's ``read(n)`` allocates ``n`` bytes
    up front, so one damaged length field would ask for exabytes. Lines (protocol 0 arguments)
    are capped for the same reason; a longer one ends the walk. It has no ``tell``, which spares
    genops a system call per opcode.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def read(self, size: int) -> bytes:
        if size <= CHUNK:
            return self._stream.read(size)
        chunks = []
        while size > 0:
            chunk = self._stream.read(min(size, CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def readline(self) -> bytes:
        return self._stream.readline(_MAX_LINE)

    def seekable(self) -> bool:
        return self._stream.seekable()

    def seek(self, offset: int, whence: int) -> int:
        return self._stream.seek(offset, whence)


def skip(stream: ByteSource, size: int) -> None:
    """Step over ``size`` bytes, reading them in chunks where the stream cannot seek."""
    if stream.seekable():
        stream.seek(size, io.SEEK_CUR)
        return
    while size > 0:
        chunk = stream.read(min(size, CHUNK))
        if not chunk:
            raise EOFError("stream ends inside an array")
        size -= len(chunk)
