"""TorchScript modules (``torch.jit.save``), called as Triton's libtorch backend calls them.

A TorchScript file carries no tensor names, datatypes or shapes, so the config must list every
input and output. Inputs are passed positionally in config order; a tuple or list result maps
to the configured outputs in order, a dict by name, a lone tensor to the only output. Dim 0 is
a batch dim when ``max_batch_size > 0``, as in Triton.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.core.errors import ModelportError, ValidationError
from modelport.runtime.config import ModelConfig
from modelport.runtime.flavors import find_model_file, import_framework, load_error, thread_count
from modelport.runtime.predictor import Predictor, TensorMeta, numpy_dtype

log = logging.getLogger(__name__)


class TorchPredictor(Predictor):
    def __init__(self, torch: Any, module: Any, device: Any, config: ModelConfig) -> None:
        self._torch = torch
        self._module = module
        self._device = device
        self.batch_dim = config.max_batch_size > 0
        lead = (-1,) if self.batch_dim else ()
        self.inputs = [TensorMeta(t.name, t.datatype, lead + t.dims) for t in config.inputs]
        self.outputs = [TensorMeta(t.name, t.datatype, lead + t.dims) for t in config.outputs]
        self._output_dtypes = [(meta.name, numpy_dtype(meta.datatype)) for meta in self.outputs]

    def _predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            # from_numpy shares memory but warns on read-only arrays (e.g. decoded from a request body)
            args = [
                torch.from_numpy(array if array.flags.writeable else array.copy()).to(self._device)
                for array in (inputs[meta.name] for meta in self.inputs)
            ]
            result = self._module(*args)
        if isinstance(result, dict):
            tensors: list[Any] = [result.get(name) for name, _ in self._output_dtypes]
        elif isinstance(result, (tuple, list)):
            tensors = list(result)
        else:
            tensors = [result]
        if len(tensors) != len(self._output_dtypes) or any(t is None for t in tensors):
            raise ModelportError(
                f"the TorchScript module returned {len(tensors)} tensors, but the config lists "
                f"{len(self._output_dtypes)} outputs ({', '.join(name for name, _ in self._output_dtypes)})"
            )
        return {
            name: tensor.detach().cpu().numpy().astype(dtype, copy=False)
            for (name, dtype), tensor in zip(self._output_dtypes, tensors)
        }


def load(model_dir: Path, config: ModelConfig | None, *, device: str = "cpu") -> TorchPredictor:
    """``torch.jit.load`` onto the CPU, or onto CUDA when asked and available."""
    torch = import_framework("torch", "torch")
    if config is None or not config.inputs or not config.outputs:
        raise ValidationError(
            "config: a TorchScript model carries no tensor names or shapes; list every input and output "
            "(name, data_type, dims) in config.yaml or config.pbtxt"
        )
    path = find_model_file(model_dir, config, flavor="torch", default_names=["model.pt"], suffixes=[".pt", ".pth"])
    target = torch.device("cpu")
    if device == "gpu":
        if torch.cuda.is_available():
            target = torch.device("cuda")
        else:
            log.warning("%s: torch sees no CUDA device; running on the CPU", path)
    threads = thread_count(config, device)
    if threads:
        torch.set_num_threads(threads)  # process-wide: each replica is its own process
    try:
        module = torch.jit.load(str(path), map_location=target)
    except (RuntimeError, ValueError) as exc:
        raise load_error(path, "TorchScript", exc) from None
    module.eval()
    return TorchPredictor(torch, module, target, config)
