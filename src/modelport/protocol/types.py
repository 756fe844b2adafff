"""The protocol's request and response, as named numpy tensors and no wire details.

A codec turns wire bytes into these objects and back, so everything between the codecs
(scheduler, batcher, models) never sees JSON, length prefixes or binary offsets. Transport-only
parameters (``binary_data_size``, ``binary_data``, ``classification``, ``binary_data_output``)
are consumed by the codec and appear here as typed fields, not inside ``parameters``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Parameters = dict[str, Any]
"""Free-form ``$parameters`` object: name → string, number or boolean."""


@dataclass
class InferInput:
    """One input tensor. ``data`` has exactly ``shape`` and the dtype of ``datatype``.

    Arrays decoded from binary tensor data are read-only views into the request body (no copy).
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray
    parameters: Parameters = field(default_factory=dict)


@dataclass
class RequestedOutput:
    """An output the client asked for and how it wants it.

    ``binary`` is the output's ``binary_data`` parameter, or the request's ``binary_data_output``
    when the output does not say; None means neither said (JSON, as Triton does).
    ``class_count`` > 0 asks for the top-k classification of this output instead of its values.
    """

    name: str
    binary: bool | None = None
    class_count: int = 0
    parameters: Parameters = field(default_factory=dict)


@dataclass
class InferenceRequest:
    """A decoded inference request.

    ``outputs`` None means "all outputs". ``binary_data_output`` is the request-level default for
    outputs that do not set ``binary_data`` themselves, also when ``outputs`` is None.
    """

    id: str | None
    inputs: list[InferInput]
    outputs: list[RequestedOutput] | None = None
    parameters: Parameters = field(default_factory=dict)
    binary_data_output: bool = False


@dataclass
class InferOutput:
    """One output tensor as produced by the model: ``data`` holds ``prod(shape)`` elements."""

    name: str
    datatype: str
    shape: Sequence[int]
    data: np.ndarray


@dataclass
class InferenceResponse:
    """What the server answers; ``id`` echoes the request's (omitted on the wire when empty)."""

    model_name: str
    model_version: str
    id: str | None
    outputs: list[InferOutput]
    parameters: Parameters = field(default_factory=dict)
