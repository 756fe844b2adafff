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


async def _runs(model: ServedModel, count: int, until_inline: Recorder | None = None) -> int:
    """``count`` runs, or fewer: with ``until_inline``, stop once its last 5 ran on the loop."""
    loop_thread = threading.get_ident()
    for value in range(count):
        execution = await model.execute({"x": np.full((1, 1), value, dtype=np.float32)}, None)
        assert execution.outputs["y"][0, 0] == value
        if until_inline is not None and until_inline.threads[-5:] == [loop_thread] * 5:
            break
    return loop_thread


def test_short_runs_move_onto_the_event_loop(tmp_path: Path) -> None:
    """The running mean of run time decides: a first run slowed by a busy machine keeps the next
    few in threads until the mean comes down, so the test allows many runs, not a fixed few."""
    predictor = Recorder(0.0)
    model = _serve(predictor, tmp_path)
    try:
        loop_thread = asyncio.run(_runs(model, 2000, until_inline=predictor))
    finally:
        model.close()
    assert predictor.threads[0] != loop_thread  # nothing is known of the model before its first run
    assert predictor.threads[-5:] == [loop_thread] * 5


def test_long_runs_stay_in_worker_threads(tmp_path: Path) -> None:
    predictor = Recorder(0.002)
    model = _serve(predictor, tmp_path)
    try:
        loop_thread = asyncio.run(_runs(model, 3))
    finally:
        model.close()
    assert loop_thread not in predictor.threads
