"""ONNX models on onnxruntime: the default flavor and the hot path of most deployments.

Metadata comes from the session itself, so a config is optional. ``predict`` hands the
checked inputs straight to ``InferenceSession.run``: no copies, no per-call conversion.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from modelport.core.errors import ValidationError
from modelport.runtime.config import ModelConfig
from modelport.runtime.flavors import default_threads, find_model_file, int_parameter, load_error, thread_count
from modelport.runtime.predictor import Predictor, TensorMeta

log = logging.getLogger(__name__)

_ONNX_DATATYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(bfloat16)": "BF16",
    "tensor(string)": "BYTES",
}


class OnnxPredictor(Predictor):
    def __init__(self, session: ort.InferenceSession, path: Path) -> None:
        self._session = session
        self.inputs = [_meta(arg, path, "input") for arg in session.get_inputs()]
        self.outputs = []
        for arg in session.get_outputs():
            if arg.type in _ONNX_DATATYPES:
                self.outputs.append(_meta(arg, path, "output"))
            else:  # e.g. skl2onnx's ZipMap seq(map(...)): not a tensor, so not servable as one
                log.warning("%s: output %r of type %s is not a tensor and is not served", path, arg.name, arg.type)
        if not self.outputs:
            raise ValidationError(f"{path}: the model has no tensor outputs")
        self._output_names = [meta.name for meta in self.outputs]
        tensors = self.inputs + self.outputs
        self.batch_dim = all(meta.shape and meta.shape[0] == -1 for meta in tensors)
        self._text_inputs = [meta.name for meta in self.inputs if meta.datatype == "BYTES"]
        self._text_outputs = {meta.name for meta in self.outputs if meta.datatype == "BYTES"}

    def _predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._text_inputs:
            inputs = {**inputs, **{name: _as_text(name, inputs[name]) for name in self._text_inputs}}
        outputs = dict(zip(self._output_names, self._session.run(self._output_names, inputs)))
        for name in self._text_outputs:
            outputs[name] = _as_bytes(outputs[name])
        return outputs

    def close(self) -> None:
        self._session = None  # the session owns the model's memory


def _as_text(name: str, array: np.ndarray) -> np.ndarray:
    """BYTES elements arrive as ``bytes``; onnxruntime's string tensors want ``str`` (UTF-8)."""
    try:
        return np.vectorize(_decode, otypes=[object])(array) if array.size else array.astype(object)
    except UnicodeDecodeError:
        raise ValidationError(f"input {name!r}: BYTES elements must be UTF-8 for this ONNX string input") from None


def _decode(item: object) -> object:
    return item.decode("utf-8") if isinstance(item, bytes) else item


def _as_bytes(array: np.ndarray) -> np.ndarray:
    """onnxruntime returns ``str`` elements; the protocol's BYTES are ``bytes``."""
    if not array.size:
        return array.astype(object)
    return np.vectorize(lambda item: item.encode("utf-8") if isinstance(item, str) else item, otypes=[object])(array)


def load(model_dir: Path, config: ModelConfig | None, *, device: str = "cpu") -> OnnxPredictor:
    """Open an InferenceSession on the CUDA provider when asked and available, else the CPU."""
    path = find_model_file(model_dir, config, flavor="onnx", default_names=["model.onnx"], suffixes=[".onnx"])
    if path.is_dir():  # Triton allows model.onnx to be a folder holding model.onnx + external data
        path = path / "model.onnx"
    options = ort.SessionOptions()
    if config is not None and config.parameters.get("share_weights", "").lower() == "true" and device == "cpu":
        path = _mapped_copy(path)
        options.add_session_config_entry("session.disable_prepacking", "1")
    # Always explicit: left to itself onnxruntime pins its pool's threads to cores, and every
    # instance and worker process on the machine would then crowd onto the same core.
    options.intra_op_num_threads = thread_count(config, device) or default_threads(config, device)
    # Pool threads spin-wait for the next parallel section unless told not to: on a server whose
    # HTTP front end needs the same cores, the spinning took half the throughput (bench/README.md).
    if config is None or config.parameters.get("allow_spinning", "").lower() != "true":
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    inter_op = int_parameter(config, "inter_op_thread_count")
    if inter_op:
        options.inter_op_num_threads = inter_op
    providers = ["CPUExecutionProvider"]
    if device == "gpu":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        else:
            log.warning("%s: onnxruntime has no CUDAExecutionProvider here; running on the CPU", path)
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise load_error(path, "an ONNX model", exc) from None
    return OnnxPredictor(session, path)


def _mapped_copy(path: Path) -> Path:
    """``path`` re-saved with its weights in one external-data file, which onnxruntime maps into
    memory instead of copying: every process that loads the copy shares the same page-cache
    pages, so N server workers hold the weights once. (Prepacking is then turned off, because
    packed weights are private copies; it costs large batches some speed.) The copy is made once
    per model file, keyed by its path, size and modification time, in the temporary folder."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:32]
    folder = Path(tempfile.gettempdir()) / "modelport-mapped-weights" / key
    if not (folder / "model.onnx").exists():
        staging = folder.with_name(f"{key}.{os.getpid()}.tmp")
        staging.mkdir(parents=True, exist_ok=True)
        try:
            onnx.save_model(
                onnx.load(str(path)),
                str(staging / "model.onnx"),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location="weights.bin",
                size_threshold=1024,
            )
            os.rename(staging, folder)
        except OSError:  # another process made the same copy first: use that one
            shutil.rmtree(staging, ignore_errors=True)
            if not (folder / "model.onnx").exists():
                raise
    return folder / "model.onnx"


def _meta(arg: ort.NodeArg, path: Path, kind: str) -> TensorMeta:
    datatype = _ONNX_DATATYPES.get(arg.type)
    if datatype is None:
        raise ValidationError(f"{path}: {kind} {arg.name!r} has type {arg.type}, which is not a tensor type")
    shape = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in (arg.shape or ()))
    return TensorMeta(arg.name, datatype, shape)
