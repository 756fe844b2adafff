"""The base of modelport's state enums.

States are stored and sent as strings (database columns, JSON documents, log lines). Members of a
:class:`StrEnum` equal, hash, print and format as their value, so a member goes wherever its
string went before and a string read back compares equal to its member. ``enum.StrEnum`` does
this from Python 3.11; modelport supports 3.10.
"""

from __future__ import annotations

import enum


class StrEnum(str, enum.Enum):
    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(str.__str__(self), spec)
