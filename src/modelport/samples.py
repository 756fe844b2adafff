"""Small, deterministic sample models: the demo, the benchmarks and the tests build their own
models from these instead of committing binaries."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def build_mlp_onnx(path: Path, sizes: Sequence[int] = (32, 64, 64, 4), seed: int = 0, softmax: bool = False) -> Path:
    """A float32 ReLU MLP with a dynamic batch dimension: input ``input`` → output ``output``
    (class probabilities with ``softmax``, a classifier's answer).

    ``(32, 64, 64, 4)`` is the "small" benchmark model, ``(256, 1024, 1024, 1024, 16)`` the
    "medium" one.
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, initializers = [], []
    current = "input"
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        weight = (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)
        bias = (rng.standard_normal(fan_out) * 0.01).astype(np.float32)
        initializers += [numpy_helper.from_array(weight, f"W{layer}"), numpy_helper.from_array(bias, f"B{layer}")]
        last = layer == len(sizes) - 2
        gemm_out = ("logits" if softmax else "output") if last else f"h{layer}"
        nodes.append(helper.make_node("Gemm", [current, f"W{layer}", f"B{layer}"], [gemm_out]))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm_out], [f"r{layer}"]))
            current = f"r{layer}"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["output"], axis=1))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", sizes[-1]])],
        initializers,
    )
    return _save(graph, path)


def build_dtypes_onnx(path: Path) -> Path:
    """A model with INT64, BOOL and BYTES (ONNX STRING) tensors, batch dim first.

    ``ints`` [-1, 3] → ``ints_out`` (identity), ``flags`` [-1, 3] → ``flags_out`` (logical not),
    ``words`` [-1, 2] → ``words_out`` (identity): enough to check every wire encoding end to end.
    """
    from onnx import TensorProto, helper

    tensors = [
        ("ints", TensorProto.INT64, 3, "Identity"),
        ("flags", TensorProto.BOOL, 3, "Not"),
        ("words", TensorProto.STRING, 2, "Identity"),
    ]
    graph = helper.make_graph(
        [helper.make_node(op, [name], [f"{name}_out"]) for name, _, _, op in tensors],
        "dtypes",
        [helper.make_tensor_value_info(name, kind, ["batch", width]) for name, kind, width, _ in tensors],
        [helper.make_tensor_value_info(f"{name}_out", kind, ["batch", width]) for name, kind, width, _ in tensors],
    )
    return _save(graph, path)


def _save(graph: Any, path: Path) -> Path:
    """Wrap a graph as an opset-17 model, check it and write it (creating the folder)."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="modelport-samples")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


CASCADE_FEATURES, CASCADE_CLASSES = 16, 4
CASCADE_PIPELINE = """\
kind: pipeline
description: the large classifier only for the rows the small one is unsure of
inputs:
  - {name: x, datatype: FP32, shape: [-1, 16]}
steps:
  - name: small
    model: small@prod
    inputs: {input: x}
    outputs: {output: small_probs}
  - name: large
    model: large@prod
    when: {tensor: small_probs, reduce: max, below: 0.9}
    inputs: {input: x}
    outputs: {output: large_probs}
outputs:
  - {name: probabilities, datatype: FP32, shape: [-1, 4], from: [large_probs, small_probs]}
"""
CASCADE_BATCHING = "max_batch_size: 256\ndynamic_batching { max_queue_delay_microseconds: 2000 }\n"


def build_cascade(folder: Path, large_width: int = 1024) -> dict[str, Path]:
    """A small and a large classifier (``small/``, ``large/``: ``model.onnx`` and a dynamically
    batching ``config.pbtxt``, to register as they are) and ``pipeline.yaml`` running the large one
    only where the small one's top probability is below 0.9, both ``@prod``. Rows far from 0 are
    the ones the small model is sure of (:func:`cascade_rows`)."""
    paths = {"small": folder / "small", "large": folder / "large"}
    sizes = {
        "small": (CASCADE_FEATURES, 32, CASCADE_CLASSES),
        "large": (CASCADE_FEATURES, large_width, large_width, CASCADE_CLASSES),
    }
    for name, model in paths.items():
        model.mkdir(parents=True)
        build_mlp_onnx(model / "model.onnx", sizes[name], seed=7, softmax=True)
        (model / "config.pbtxt").write_text(CASCADE_BATCHING)
    paths["pipeline"] = folder / "pipeline.yaml"
    paths["pipeline"].write_text(CASCADE_PIPELINE)
    return paths


def cascade_rows(rows: int, sure: float, seed: int = 0) -> np.ndarray:
    """``rows`` inputs of which a ``sure`` share are far from 0 (a ReLU network's logits grow with
    its input, so the small model is confident there) and the rest close to it (it is not)."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((rows, CASCADE_FEATURES)).astype(np.float32)
    scale = np.where(rng.random(rows) < sure, 40.0, 0.05).astype(np.float32)
    return data * scale[:, None]
