"""Kubernetes names and label values from modelport names.

modelport's names allow capitals, ``_`` and ``.`` and run to 255 characters; an object name must
be a DNS-1035 label (Services: lower case, digits and ``-``, starting with a letter, at most 63)
and a label value at most 63 characters of ``[A-Za-z0-9._-]`` starting and ending alphanumeric.
A name that had to change gets a short hash of the original, so two modelport names never map to
the same object.
"""

from __future__ import annotations

import hashlib
import re

# Deployments' pods are named NAME-<10>-<5>; KServe adds "-predictor" (and more) to an
# InferenceService's name: 45 leaves room for both within 63.
NAME_LIMIT = 45
LABEL_LIMIT = 63
_NOT_NAME = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9._-]+")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def is_dns_label(text: str) -> bool:
    """Whether ``text`` may name a namespace (a DNS-1123 label)."""
    return bool(_DNS_LABEL.match(text))


def object_name(*parts: str, limit: int = NAME_LIMIT) -> str:
    """``parts`` joined with ``-`` as a DNS-1035 label of at most ``limit`` characters."""
    text = "-".join(parts)
    name = _NOT_NAME.sub("-", text.lower()).strip("-")
    if not name[:1].isalpha():
        name = f"m-{name}"
    return _shortened(name, text, limit, "-")


def label_value(text: str) -> str:
    """``text`` as a label value (at most 63 characters, alphanumeric at both ends)."""
    value = _NOT_LABEL.sub("-", text).strip("-_.")
    return _shortened(value, text, LABEL_LIMIT, "-") if value else _digest(text)


def _shortened(value: str, original: str, limit: int, joint: str) -> str:
    if value == original and len(value) <= limit:
        return value
    suffix = _digest(original)
    return f"{value[: limit - len(suffix) - 1].rstrip('-_.')}{joint}{suffix}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]
