"""The one reader of request bodies, for every front end (scoring server, endpoint router): a
size limit enforced before and while reading (:data:`DEFAULT_MAX_BODY` unless the server is
told otherwise), and gzip/deflate request bodies (``Content-Encoding``) decompressed with the
same limit, so a small compressed body cannot expand into gigabytes."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable, AsyncIterator

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from modelport.core.errors import ValidationError
from modelport.core.http_errors import PayloadTooLarge, UnsupportedEncoding

DEFAULT_MAX_BODY = 100 * 1024 * 1024


async def read_body(request: Request, limit: int, decode: bool = True) -> bytes:
    """A Starlette request's body, limited, and decompressed unless ``decode`` is False (the
    bytes as sent, for a handler that sees the Content-Encoding itself)."""
    headers = request.headers
    encoding = headers.get("content-encoding") if decode else None
    return await read_limited(request.stream(), headers.get("content-length"), encoding, limit)


async def asgi_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The body chunks of a raw ASGI request (for handlers that bypass Starlette)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def read_asgi(receive: Receive, declared: str | None, encoding: str | None, limit: int) -> bytes:
    """A raw ASGI request's body, as :func:`read_limited` reads it. A body that came in one
    message (nearly every inference request) is taken from it directly: the async generator of
    :func:`asgi_chunks` and its iteration were a measurable share of a small request's cost."""
    check_declared(declared, limit)
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")
        if len(body) > limit:
            raise too_large(limit)
        return _decoded(body, encoding, limit)

    async def chunks() -> AsyncIterator[bytes]:
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        async for chunk in asgi_chunks(receive):
            yield chunk

    return await read_limited(chunks(), None, encoding, limit)


async def read_limited(chunks: AsyncIterable[bytes], declared: str | None, encoding: str | None, limit: int) -> bytes:
    """The chunks joined, refused (413) once ``declared`` (the Content-Length) or what came is over
    ``limit``, and decompressed per ``encoding`` (None: as sent)."""
    check_declared(declared, limit)
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        parts.append(chunk)
    return _decoded(parts[0] if len(parts) == 1 else b"".join(parts), encoding, limit)


def too_large(limit: int) -> PayloadTooLarge:
    """The refusal of a body found to be over ``limit`` while it is read (413)."""
    return PayloadTooLarge(f"request body exceeds the {limit}-byte limit")


def check_declared(declared: str | None, limit: int) -> None:
    """Refuse a Content-Length that is not a number or is over ``limit``, before any body is read."""
    if declared is not None:
        if not declared.isdigit():
            raise ValidationError(f"Content-Length: {declared!r} is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"request body of {declared} bytes exceeds the {limit}-byte limit")


def _decoded(body: bytes, encoding: str | None, limit: int) -> bytes:
    """``body`` decompressed per its Content-Encoding ``encoding`` (None: as sent), within ``limit``."""
    if encoding is None:
        return body
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return _inflate(body, zlib.MAX_WBITS | 16, limit, encoding)
    if encoding == "deflate":
        return _inflate(body, zlib.MAX_WBITS, limit, encoding)
    raise UnsupportedEncoding(f"Content-Encoding: {encoding!r} is not supported; use gzip or deflate")


def _inflate(body: bytes, wbits: int, limit: int, encoding: str) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ValidationError(f"Content-Encoding: body is not valid {encoding} data ({exc})") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed request body exceeds the {limit}-byte limit")
    if not inflater.eof:
        raise ValidationError(f"Content-Encoding: {encoding} body is truncated")
    return data
