"""Stand-in for ``azureml.contrib.services.aml_response``: the ``AMLResponse`` a ``run()`` returns.

Same constructor and rules as azmlinfsrv's Flask-based class, without Flask:

* ``message`` None → ``{}`` as JSON; ``json_str=True`` → ``json.dumps(message)`` as JSON;
  otherwise the str/bytes as they are, or any other iterable (a generator) streamed chunk by
  chunk, with Flask's default ``text/html; charset=utf-8`` unless the script sets Content-Type.
* Header values with commas become repeated headers (``"A, B"`` → ``A`` and ``B``).
* ``x-ms-run-function-failed`` reflects ``run_function_failed``; the host forces it to True
  for a status of 500 or more.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .aml_request import Headers

JSON_TYPE = "application/json"
DEFAULT_TYPE = "text/html; charset=utf-8"


class AMLResponse:
    """An HTTP response built by the scoring script; the host sends it as it is."""

    def __init__(
        self,
        message: Any,
        status_code: int,
        response_headers: Mapping[str, Any] | None = None,
        json_str: bool = False,
        run_function_failed: bool = False,
    ) -> None:
        self.status_code = int(status_code)
        self.headers = Headers()
        user_headers = dict(response_headers or {})
        if message is None or json_str:
            self.response: bytes | Iterable[bytes | str] = json.dumps({} if message is None else message).encode()
            self.headers["Content-Type"] = JSON_TYPE
            user_headers = {name: value for name, value in user_headers.items() if name.lower() != "content-type"}
        else:
            self.response = message.encode() if isinstance(message, str) else message
            if not any(name.lower() == "content-type" for name in user_headers):
                self.headers["Content-Type"] = DEFAULT_TYPE
        self.headers["x-ms-run-function-failed"] = str(bool(run_function_failed))
        for name, value in user_headers.items():
            for part in str(value).split(","):
                self.headers.add(name, part.strip())

    @property
    def is_streamed(self) -> bool:
        """True when the body is an iterable produced while sending rather than bytes in memory."""
        return not isinstance(self.response, (bytes, bytearray, memoryview))

    @property
    def data(self) -> bytes:
        if self.is_streamed:
            raise TypeError("a streamed AMLResponse has no data in memory")
        return bytes(self.response)  # type: ignore[arg-type]

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")

    def __repr__(self) -> str:
        return f"<AMLResponse [{self.status_code}]>"
