"""The request the profiler sends: ``--input``'s bytes, the route they go to, and their batch rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from modelport.core.errors import ValidationError


@dataclass(frozen=True)
class Sample:
    """A JSON object with ``inputs`` is an Open Inference Protocol v2 request (``/v2/models/<m>/infer``);
    anything else is an Azure ML ``/score`` body, sent as it is."""

    body: bytes
    v2: bool
    rows: int  # dim 0 of the first v2 input: the rows one request adds to a batch (1 for /score)

    @classmethod
    def read(cls, path: Path) -> Sample:
        try:
            body = Path(path).read_bytes()
        except OSError as exc:
            raise ValidationError(f"--input: cannot read {path} ({exc.strerror})") from None
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return cls(body, False, 1)
        if not (isinstance(data, dict) and "inputs" in data):
            return cls(body, False, 1)
        inputs = data["inputs"]
        if not isinstance(inputs, list) or not inputs or not isinstance(inputs[0], dict):
            raise ValidationError(f"--input: {path}: inputs must be a non-empty list of tensors")
        shape = inputs[0].get("shape")
        rows = shape[0] if isinstance(shape, list) and shape and isinstance(shape[0], int) and shape[0] > 0 else 1
        return cls(body, True, rows)

    def path(self, model: str | None) -> str:
        """The route on the server: the model's infer route for a v2 request, else ``/score``."""
        return f"/v2/models/{model}/infer" if self.v2 else "/score"
