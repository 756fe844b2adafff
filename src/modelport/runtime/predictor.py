"""The Predictor contract every flavor's loader returns, and ``load_predictor``.

Batching, protocols and metrics are written once against :class:`Predictor`: named numpy
tensors in, named numpy tensors out, plus metadata describing them. ``load_predictor`` asks the
flavor catalog (:mod:`.flavor_catalog`) for the flavor, whose loader module is imported only when
a model of that flavor is loaded, so importing this module never pulls in a framework.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from modelport.core.datatypes import BF16, BYTES, BYTES_KINDS, datatype_of, dtype_of
from modelport.core.errors import ValidationError
from modelport.runtime import flavor_catalog
from modelport.runtime.config import ModelConfig

DEVICES = ("cpu", "gpu")


def numpy_dtype(datatype: str) -> np.dtype:
    """The numpy dtype a framework computes a v2 datatype in (BYTES as object).

    BF16 has none: the protocol holds it as ``uint16`` bits, which a framework would read as
    integers, so a BF16 tensor is refused here rather than silently misread.
    """
    if datatype == BF16:
        raise ValidationError(f"datatype {datatype} has no numpy equivalent")
    return dtype_of(datatype)


@dataclass(frozen=True)
class TensorMeta:
    """A model input or output as the protocol reports it: shape includes the batch dim, -1 = variable."""

    name: str
    datatype: str
    shape: tuple[int, ...]


class Predictor(ABC):
    """A loaded model. ``predict`` checks its inputs against ``inputs`` then runs the model.

    ``batch_dim`` is True when dim 0 of every input and output is a variable batch dim, so that
    requests may be concatenated along it and the results split back.
    """

    inputs: list[TensorMeta]
    outputs: list[TensorMeta]
    batch_dim: bool

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on named arrays; bad input raises ValidationError naming the input."""
        check_inputs(self.inputs, inputs)
        return self._predict(inputs)

    @abstractmethod
    def _predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on inputs already checked against ``self.inputs``."""

    def close(self) -> None:
        """Release what the model holds (sessions, device memory); the default holds nothing."""
        return None

    def __enter__(self) -> Predictor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def check_inputs(expected: Sequence[TensorMeta], inputs: Mapping[str, np.ndarray]) -> None:
    """Reject missing, unexpected, mistyped or misshapen inputs with a one-line reason.

    Datatypes must match exactly rather than being converted: as in Triton, the client declares
    a datatype with every tensor, so a mismatch is a client bug that silent casting would hide.
    """
    for meta in expected:
        array = inputs.get(meta.name)
        if array is None:
            names = ", ".join(m.name for m in expected)
            raise ValidationError(f"input {meta.name!r}: missing (the model takes {names})")
        if not isinstance(array, np.ndarray):
            raise ValidationError(f"input {meta.name!r}: expected a numpy array, got {type(array).__name__}")
        if not _holds(array.dtype, meta.datatype):
            got = _datatype_name(array.dtype)
            raise ValidationError(f"input {meta.name!r}: datatype is {got}, but the model expects {meta.datatype}")
        shape = array.shape
        if len(shape) != len(meta.shape) or any(want not in (-1, have) for want, have in zip(meta.shape, shape)):
            raise ValidationError(
                f"input {meta.name!r}: shape {list(shape)} does not match the model's {list(meta.shape)}"
            )
    if len(inputs) > len(expected):
        known = {meta.name for meta in expected}
        unexpected = next(name for name in inputs if name not in known)
        raise ValidationError(f"input {unexpected!r}: not an input of this model (it takes {', '.join(sorted(known))})")


def _holds(dtype: np.dtype, datatype: str) -> bool:
    """Whether arrays of ``dtype`` go to the model as ``datatype`` as they are, with no cast.

    The dtype must be the very one (native byte order): frameworks read the buffer as given.
    """
    if datatype == BYTES:
        return dtype.kind in BYTES_KINDS
    try:
        return dtype == numpy_dtype(datatype)
    except ValidationError:  # BF16, or not a datatype at all: no array holds it
        return False


def _datatype_name(dtype: np.dtype) -> str:
    """How an input's dtype is named in errors: its v2 datatype if it is that one exactly."""
    try:
        datatype = datatype_of(dtype)
    except ValidationError:
        return str(dtype)
    return datatype if _holds(dtype, datatype) else str(dtype)


def load_predictor(
    flavor: str, model_dir: Path, config: ModelConfig | None = None, *, device: str = "cpu"
) -> Predictor:
    """Load the model in ``model_dir`` with the flavor's loader, importing that flavor only now.

    ``device`` is ``cpu`` or ``gpu``; a flavor without a usable GPU falls back to the CPU.
    """
    found = flavor_catalog.get(flavor)
    if found is None or not found.loadable:
        raise ValidationError(
            f"flavor: {flavor!r} is not known; use one of {', '.join(flavor_catalog.loadable_names())}"
        )
    if device not in DEVICES:
        raise ValidationError(f"device: {device!r} is not known; use cpu or gpu")
    model_dir = Path(model_dir)
    if not model_dir.exists():
        raise ValidationError(f"{model_dir}: does not exist")
    return found.load(model_dir, config, device=device)
