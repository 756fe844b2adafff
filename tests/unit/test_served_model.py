"""Where a served model's runs happen: on the event loop when they are shorter than the hop to a
worker thread, in worker threads otherwise (and always for instances in child processes)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from modelport.registry.sources import ModelSource
from modelport.runtime.config import ModelConfig
from modelport.runtime.predictor import Predictor, TensorMeta
from modelport.serving.model import ServedModel


class Recorder(Predictor):
    """Echoes its input after ``seconds`` and notes the thread of every run."""

    inputs = [TensorMeta("x", "FP32", (-1, 1))]
    outputs = [TensorMeta("y", "FP32", (-1, 1))]
    batch_dim = True

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.threads: list[int] = []

    def _predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.threads.append(threading.get_ident())
        if self.seconds:
            time.sleep(self.seconds)
        return {"y": inputs["x"]}


def _serve(predictor: Predictor, tmp_path: Path) -> ServedModel:
    source = ModelSource("m", 1, "onnx", tmp_path, None, tmp_path)
    return ServedModel(source, ModelConfig("m", max_batch_size=8), [predictor])


async def _runs(model: ServedModel, count: int) -> int:
    for value in range(count):
        execution = await model.execute({"x": np.full((1, 1), value, dtype=np.float32)}, None)
        assert execution.outputs["y"][0, 0] == value
    return threading.get_ident()


def test_short_runs_move_onto_the_event_loop(tmp_path: Path) -> None:
    predictor = Recorder(0.0)
    model = _serve(predictor, tmp_path)
    try:
        loop_thread = asyncio.run(_runs(model, 5))
    finally:
        model.close()
    assert predictor.threads[0] != loop_thread  # nothing is known of the model before its first run
    assert predictor.threads[1:] == [loop_thread] * 4


def test_long_runs_stay_in_worker_threads(tmp_path: Path) -> None:
    predictor = Recorder(0.002)
    model = _serve(predictor, tmp_path)
    try:
        loop_thread = asyncio.run(_runs(model, 3))
    finally:
        model.close()
    assert loop_thread not in predictor.threads
