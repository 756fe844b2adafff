"""Protobuf text format without a schema: the subset Triton's ``config.pbtxt`` files use.

Pure text to nested dicts, so that no protobuf schema has to ship to read a Triton config; what
the fields mean is :mod:`modelport.runtime.config`'s business. A field seen once maps to its
value; a field seen again, or written with ``[...]``, maps to a list. Enums stay strings
(``TYPE_FP32``), ``true``/``false`` become bools, numbers become int or float. Both ``{}`` and
``<>`` delimit messages.
"""

from __future__ import annotations

import re
from typing import Any

from modelport.core.errors import ValidationError


class PbtxtError(ValidationError):
    """Text that is not protobuf text; the message names the source and the line."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}: line {line}: {reason}")
        self.line = line


def parse_pbtxt(text: str, source: str = "config.pbtxt") -> dict[str, Any]:
    """The top-level message of ``text`` as a dict; ``source`` names the text in errors."""
    return _Parser(text, source).parse()


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
_CLOSING = {"{": "}", "<": ">"}  # protobuf text delimits messages with either pair


class _Parser:
    """A recursive-descent parser over the tokens of one text, read ahead of parsing."""

    _TOKEN = re.compile(
        r"""(?P<space>\s+|\#[^\n]*)
        |(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
        |(?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)[fF]?)
        |(?P<ident>-?[A-Za-z_][\w.]*)
        |(?P<punct>[{}<>\[\]:,;])""",
        re.VERBOSE,
    )

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.tokens: list[tuple[str, str, int]] = []  # (kind, text, line)
        position, line = 0, 1
        while position < len(text):
            match = self._TOKEN.match(text, position)
            if match is None:
                raise PbtxtError(source, line, f"unexpected character {text[position]!r}")
            if match.lastgroup != "space":
                self.tokens.append((match.lastgroup or "", match.group(), line))
            line += match.group().count("\n")
            position = match.end()
        self.position = 0

    def parse(self) -> dict[str, Any]:
        return self._message(closing=None)

    def _peek(self) -> tuple[str, str, int]:
        if self.position < len(self.tokens):
            return self.tokens[self.position]
        last_line = self.tokens[-1][2] if self.tokens else 1
        return ("end", "end of file", last_line)

    def _next(self) -> tuple[str, str, int]:
        token = self._peek()
        self.position += 1
        return token

    def _fail(self, token: tuple[str, str, int], expected: str) -> PbtxtError:
        return PbtxtError(self.source, token[2], f"expected {expected}, got {token[1]!r}")

    def _message(self, closing: str | None) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        while True:
            token = self._next()
            if token[0] == "end" and closing is None:
                return fields
            if token[0] == "punct" and token[1] == closing:
                return fields
            if token[0] != "ident":
                raise self._fail(token, "a field name" + (f" or {closing!r}" if closing else ""))
            name = token[1]
            after = self._peek()
            if after[1] == ":":
                self.position += 1
            elif after[1] not in _CLOSING and after[1] != "[":  # the colon is optional before messages
                raise self._fail(after, f"':' or '{{' after {name!r}")
            if self._peek()[1] == "[":
                self.position += 1
                self._add(fields, name, self._list(), repeated=True)
            else:
                self._add(fields, name, self._value(), repeated=False)
            if self._peek()[1] in (",", ";"):
                self.position += 1

    def _list(self) -> list[Any]:
        items: list[Any] = []
        if self._peek()[1] == "]":
            self.position += 1
            return items
        while True:
            items.append(self._value())
            token = self._next()
            if token[1] == "]":
                return items
            if token[1] != ",":
                raise self._fail(token, "',' or ']'")

    def _value(self) -> Any:
        token = self._next()
        kind, text, _ = token
        if kind == "punct" and text in _CLOSING:
            return self._message(closing=_CLOSING[text])
        if kind == "string":
            value = self._unquote(text)
            while self._peek()[0] == "string":  # adjacent literals concatenate
                value += self._unquote(self._next()[1])
            return value
        if kind == "number":
            return self._number(text)
        if kind == "ident":
            if text in ("true", "True"):
                return True
            if text in ("false", "False"):
                return False
            if text.lstrip("-").lower() in ("inf", "infinity", "nan"):
                return float(text)
            return text
        raise self._fail(token, "a value")

    @staticmethod
    def _number(text: str) -> int | float:
        body = text.rstrip("fF") if not text.lower().startswith(("0x", "-0x", "+0x")) else text
        if re.fullmatch(r"[-+]?0[xX][0-9a-fA-F]+", body):
            return int(body, 16)
        if re.fullmatch(r"[-+]?\d+", body):
            return int(body)
        return float(body)

    def _unquote(self, text: str) -> str:
        return re.sub(r"\\(.)", lambda match: _ESCAPES.get(match.group(1), match.group(1)), text[1:-1])

    @staticmethod
    def _add(fields: dict[str, Any], name: str, value: Any, *, repeated: bool) -> None:
        if name not in fields:
            fields[name] = value if not repeated else list(value)
            return
        existing = fields[name]
        if not isinstance(existing, list):
            existing = fields[name] = [existing]
        if repeated:
            existing.extend(value)
        else:
            existing.append(value)
