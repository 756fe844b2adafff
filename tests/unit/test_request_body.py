"""core.request_body.read_asgi: the infer fast path's body reader keeps read_limited's rules
(limit before and while reading, gzip within the limit, a client gone) whether the body comes in
one ASGI message or several."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from starlette.requests import ClientDisconnect

from modelport.core.errors import ValidationError
from modelport.core.http_errors import PayloadTooLarge, UnsupportedEncoding
from modelport.core.request_body import read_asgi


def _read(messages: list[dict], declared: str | None = None, encoding: str | None = None, limit: int = 100) -> bytes:
    pending = iter(messages)

    async def receive() -> dict:
        return next(pending)

    return asyncio.run(read_asgi(receive, declared, encoding, limit))


def _chunks(*parts: bytes) -> list[dict]:
    return [{"type": "http.request", "body": part, "more_body": i < len(parts) - 1} for i, part in enumerate(parts)]


@pytest.mark.parametrize("parts", [(b"0123456789",), (b"0123", b"", b"456789"), (b"",)])
def test_the_body_whole_from_one_message_or_several(parts: tuple[bytes, ...]) -> None:
    assert _read(_chunks(*parts)) == b"".join(parts)


@pytest.mark.parametrize("parts", [(b"x" * 101,), (b"x" * 60, b"x" * 41)])
def test_over_the_limit_is_413_however_it_came(parts: tuple[bytes, ...]) -> None:
    with pytest.raises(PayloadTooLarge, match="exceeds the 100-byte limit"):
        _read(_chunks(*parts))
    assert _read(_chunks(b"x" * 100)) == b"x" * 100


def test_the_declared_length_is_checked_before_reading() -> None:
    with pytest.raises(PayloadTooLarge, match="request body of 101 bytes"):
        _read([], declared="101")  # receive() is never called
    with pytest.raises(ValidationError, match="Content-Length: '1x' is not a number"):
        _read([], declared="1x")


def test_gzip_is_inflated_within_the_limit() -> None:
    packed = gzip.compress(b"a" * 80)
    assert _read(_chunks(packed), encoding=" GZIP ") == b"a" * 80
    assert _read(_chunks(packed[:10], packed[10:]), encoding="gzip") == b"a" * 80
    with pytest.raises(PayloadTooLarge, match="decompressed"):
        _read(_chunks(gzip.compress(b"a" * 101)), encoding="gzip")
    with pytest.raises(UnsupportedEncoding, match="'br'"):
        _read(_chunks(b"x"), encoding="br")


@pytest.mark.parametrize("before", [[], _chunks(b"ab", b"cd")[:1]])
def test_a_client_gone_is_a_disconnect(before: list[dict]) -> None:
    with pytest.raises(ClientDisconnect):
        _read([*before, {"type": "http.disconnect"}])
