"""Endpoint keys: made here, stored only in the workspace database, checked in constant time.

A request carries ``Authorization: Bearer <key>``; either of the endpoint's two keys is valid,
so a client can move to the secondary key while the primary is regenerated. Both keys are
always compared (``hmac.compare_digest``), so neither the time taken nor an early exit tells
an attacker which key, or how much of one, matched. Keys are never logged or forwarded.
"""

from __future__ import annotations

import hmac
import secrets

KEY_NAMES = ("primary", "secondary")


def new_key() -> str:
    """256 random bits, URL-safe: 43 characters."""
    return secrets.token_urlsafe(32)


def authorized(header: str | None, keys: tuple[str, str]) -> bool:
    """Whether an ``Authorization`` header value carries one of ``keys`` as a bearer token."""
    scheme, _, token = (header or "").partition(" ")
    presented = token.strip().encode()
    matches = [hmac.compare_digest(presented, key.encode()) for key in keys]
    return scheme.lower() == "bearer" and bool(presented) and any(matches)
