"""Stand-in for ``azureml.contrib.services.aml_request``: ``rawhttp`` and ``AMLRequest``.

Scoring scripts written for Azure ML import these names; the real module needs Flask and the
whole ``azureml-inference-server-http`` package. modelport's script host puts this folder on
``sys.path`` for the script only (and aliases it as ``azureml_inference_server_http.api``), so
the same imports resolve here. ``AMLRequest`` offers the part of the Flask/werkzeug request API
that scoring scripts use: ``method``, ``url``, ``path``, ``headers``, ``args``, ``data``,
``get_data()``, ``json``/``get_json()``, ``is_json``, ``form``, ``files`` and ``values``.

Unlike azmlinfsrv, which keeps one process-wide flag, ``rawhttp`` marks the function it
decorates, so several scripts can be hosted in one process.
"""

from __future__ import annotations

import inspect
import io
import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, BinaryIO, TypeVar
from urllib.parse import parse_qsl, urlsplit

RAWHTTP_ATTRIBUTE = "__aml_rawhttp__"

_F = TypeVar("_F", bound=Callable[..., Any])


def rawhttp(func: _F) -> _F:
    """Ask for the whole HTTP request: ``run(request)`` then gets an :class:`AMLRequest`."""
    setattr(func, RAWHTTP_ATTRIBUTE, True)
    return func


def wants_raw_request(func: Callable[..., Any]) -> bool:
    """Whether ``func`` (or a function it wraps) was decorated with :func:`rawhttp`."""
    try:
        innermost = inspect.unwrap(func, stop=lambda inner: getattr(inner, RAWHTTP_ATTRIBUTE, False))
    except ValueError:  # a __wrapped__ cycle
        return False
    return bool(getattr(innermost, RAWHTTP_ATTRIBUTE, False))


class Headers:
    """Ordered, case-insensitive, repeatable HTTP headers, iterated as ``(name, value)`` pairs.

    Mirrors werkzeug's ``Headers`` so that ``request.headers.get(...)``, ``"X" in headers``,
    ``dict(headers)`` and ``for name, value in headers`` behave as scripts expect; responses use
    the mutating methods.
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(str(name), str(value)) for name, value in items]

    def __getitem__(self, name: str) -> str:
        wanted = name.lower()
        for key, value in self._items:
            if key.lower() == wanted:
                return value
        raise KeyError(name)

    def get(self, name: str, default: Any = None, type: Callable[[str], Any] | None = None) -> Any:  # noqa: A002 - werkzeug's name
        try:
            value = self[name]
        except KeyError:
            return default
        if type is None:
            return value
        try:
            return type(value)
        except ValueError:
            return default

    def getlist(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self._items if key.lower() == wanted]

    def keys(self) -> list[str]:
        seen: dict[str, str] = {}
        for key, _ in self._items:
            seen.setdefault(key.lower(), key)
        return list(seen.values())

    def values(self) -> list[str]:
        return [self[key] for key in self.keys()]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(key.lower() == name.lower() for key, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def add(self, name: str, value: Any) -> None:
        self._items.append((str(name), str(value)))

    add_header = add

    def __setitem__(self, name: str, value: Any) -> None:
        self.remove(name)
        self.add(name, value)

    set = __setitem__

    def remove(self, name: str) -> None:
        wanted = name.lower()
        self._items = [(key, value) for key, value in self._items if key.lower() != wanted]

    __delitem__ = remove


class MultiDict(dict):
    """A dict of first values that also keeps every value of a repeated key (werkzeug's API)."""

    def __init__(self, pairs: Iterable[tuple[str, Any]] = ()) -> None:
        self._lists: dict[str, list[Any]] = {}
        for key, value in pairs:
            self._lists.setdefault(key, []).append(value)
        super().__init__((key, values[0]) for key, values in self._lists.items())

    def get(self, key: str, default: Any = None, type: Callable[[Any], Any] | None = None) -> Any:  # noqa: A002
        if key not in self:
            return default
        if type is None:
            return self[key]
        try:
            return type(self[key])
        except ValueError:
            return default

    def getlist(self, key: str, type: Callable[[Any], Any] | None = None) -> list[Any]:  # noqa: A002
        values = list(self._lists.get(key, []))
        return values if type is None else [type(value) for value in values]

    def items(self, multi: bool = False) -> list[tuple[str, Any]]:  # type: ignore[override]
        if not multi:
            return list(super().items())
        return [(key, value) for key, values in self._lists.items() for value in values]

    def to_dict(self, flat: bool = True) -> dict[str, Any]:
        return dict(self) if flat else {key: list(values) for key, values in self._lists.items()}


class FileStorage:
    """One uploaded file of a ``multipart/form-data`` body, like werkzeug's ``FileStorage``."""

    def __init__(self, data: bytes, name: str, filename: str | None, content_type: str | None) -> None:
        self.stream: BinaryIO = io.BytesIO(data)
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.mimetype = (content_type or "").split(";")[0].strip().lower()

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)

    def save(self, destination: str | BinaryIO) -> None:
        if isinstance(destination, str):
            with open(destination, "wb") as target:
                shutil.copyfileobj(self.stream, target)
        else:
            shutil.copyfileobj(self.stream, destination)

    def __repr__(self) -> str:
        return f"<FileStorage: {self.filename!r} ({self.content_type!r})>"


class AMLRequest:
    """The HTTP request handed to a ``@rawhttp`` ``run()``; read-only, body already in memory."""

    def __init__(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        remote_addr: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.method = method.upper()
        self.url = url
        self.path = parts.path or "/"
        self.query_string = parts.query.encode("latin-1", "replace")
        self.args = MultiDict(parse_qsl(parts.query, keep_blank_values=True))
        self.headers = Headers(headers)
        self.remote_addr = remote_addr
        self._body = body
        self._form: tuple[MultiDict, MultiDict] | None = None

    def __repr__(self) -> str:
        return f"<AMLRequest {self.url!r} [{self.method}]>"

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")

    @property
    def mimetype(self) -> str:
        return (self.content_type or "").split(";")[0].strip().lower()

    @property
    def content_length(self) -> int | None:
        return self.headers.get("Content-Length", type=int)

    @property
    def is_json(self) -> bool:
        """True for ``application/json`` and ``application/*+json``, as werkzeug decides."""
        mimetype = self.mimetype
        return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))

    @property
    def data(self) -> bytes:
        return self._body

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False) -> bytes | str:
        return self._body.decode("utf-8", "replace") if as_text else self._body

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """The body parsed as JSON; not JSON (by type unless ``force``, or by content) raises unless ``silent``."""
        if not (force or self.is_json):
            if silent:
                return None
            raise ValueError(f"request Content-Type {self.content_type!r} is not JSON; use get_json(force=True)")
        try:
            return json.loads(self._body)
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self) -> Any:
        return self.get_json()

    @property
    def form(self) -> MultiDict:
        return self._parsed_form()[0]

    @property
    def files(self) -> MultiDict:
        return self._parsed_form()[1]

    @property
    def values(self) -> MultiDict:
        return MultiDict(self.args.items(multi=True) + self.form.items(multi=True))

    def _parsed_form(self) -> tuple[MultiDict, MultiDict]:
        if self._form is None:
            if self.mimetype == "application/x-www-form-urlencoded":
                text = self._body.decode("utf-8", "replace")
                self._form = MultiDict(parse_qsl(text, keep_blank_values=True)), MultiDict()
            elif self.mimetype == "multipart/form-data":
                self._form = _parse_multipart(self.content_type or "", self._body)
            else:
                self._form = MultiDict(), MultiDict()
        return self._form


def _parse_multipart(content_type: str, body: bytes) -> tuple[MultiDict, MultiDict]:
    """Split a ``multipart/form-data`` body into fields and files with the stdlib MIME parser."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: list[tuple[str, str]] = []
    files: list[tuple[str, FileStorage]] = []
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        payload = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is None:
            fields.append((name, payload.decode(part.get_content_charset() or "utf-8", "replace")))
        else:
            files.append((name, FileStorage(payload, name, filename, part.get("Content-Type"))))
    return MultiDict(fields), MultiDict(files)
