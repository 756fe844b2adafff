"""``modelport.models``: a scoring script's in-process calls to the models served beside it, from
a thread, from coroutines on the server's loop and on a loop of their own, and before the server
serves; every failure is a ModelCallError naming the call."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from starlette.applications import Starlette

from modelport import models
from modelport.registry.sources import sources_from_repository
from modelport.samples import build_mlp_onnx
from modelport.serving import script_models
from modelport.serving.http.azureml import azureml_routes
from modelport.serving.repository import ModelRepository
from modelport.serving.scoring_script import ScriptHost

pytestmark = pytest.mark.serial  # timing assertions: run alone, after the parallel part (scripts/test.sh)

SIZES = (4, 8, 3)
CONFIG = """
name: "mlp"
platform: "onnxruntime_onnx"
max_batch_size: 16
dynamic_batching { max_queue_delay_microseconds: 50000 }
"""


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelRepository]:
    root = tmp_path_factory.mktemp("calls")
    build_mlp_onnx(root / "mlp" / "1" / "model.onnx", SIZES)
    (root / "mlp" / "config.pbtxt").write_text(CONFIG)
    loaded = ModelRepository(sources_from_repository(root))
    loaded.load_all()
    yield loaded
    loaded.close()


@pytest.fixture
def attached(repository: ModelRepository) -> Iterator[ModelRepository]:
    script_models.attach(repository)
    yield repository
    script_models.attach(None)


@pytest.fixture
def server_loop(attached: ModelRepository) -> Iterator[asyncio.AbstractEventLoop]:
    """A loop running in its own thread, as the server's does, told to the calls."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    script_models.serve_on(loop)
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def reference(repository: ModelRepository, rows: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(repository.get("mlp").source.path / "model.onnx"))
    return session.run(None, {"input": rows})[0]


def rows(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, SIZES[0])).astype(np.float32)


def test_a_call_before_the_server_serves_runs_on_a_loop_of_its_own(attached: ModelRepository) -> None:
    data = rows(3)
    answer = models.infer("mlp", {"input": data})
    assert list(answer) == ["output"]
    np.testing.assert_allclose(answer["output"], reference(attached, data), rtol=1e-5)


def test_calls_from_threads_go_through_the_model_scheduler_and_batch(server_loop: asyncio.AbstractEventLoop) -> None:
    repository = script_models.SERVED.repository
    assert repository is not None
    stats = repository.get("mlp").stats
    before = (stats.execution_count, stats.inference_count)
    inputs = [rows(1, seed) for seed in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda data: models.infer("mlp", {"input": data}, outputs=["output"]), inputs))
    for data, answer in zip(inputs, answers):
        np.testing.assert_allclose(answer["output"], reference(repository, data), rtol=1e-5)
    executions, inferences = stats.execution_count - before[0], stats.inference_count - before[1]
    assert inferences == 8 and executions < inferences  # joined into batches by the model's batcher


def test_infer_async_on_the_server_loop_and_on_a_loop_of_its_own(server_loop: asyncio.AbstractEventLoop) -> None:
    data = rows(2, seed=5)
    expected = reference(script_models.SERVED.repository, data)  # type: ignore[arg-type]
    on_server = asyncio.run_coroutine_threadsafe(models.infer_async("mlp", {"input": data}), server_loop).result(10)
    np.testing.assert_allclose(on_server["output"], expected, rtol=1e-5)

    async def fan_out() -> list[dict[str, np.ndarray]]:  # a script's own asyncio.run inside run()
        return await asyncio.gather(*(models.infer_async("mlp", {"input": data}, version=1) for _ in range(3)))

    for answer in asyncio.run(fan_out()):
        np.testing.assert_allclose(answer["output"], expected, rtol=1e-5)


def test_rows_beyond_max_batch_size_go_in_chunks(attached: ModelRepository) -> None:
    data = rows(40, seed=2)
    np.testing.assert_allclose(models.infer("mlp", {"input": data})["output"], reference(attached, data), rtol=1e-5)


def test_metadata_describes_the_model(attached: ModelRepository) -> None:
    described = models.metadata("mlp")
    assert described["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert described["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 3]}]


@pytest.mark.parametrize(
    ("call", "status", "message"),
    [
        (
            lambda: models.infer("nope", {"input": rows(1)}),
            404,
            "models: no model 'nope' is loaded beside this script (loaded: mlp:1)",
        ),
        (
            lambda: models.metadata("mlp", version=7),
            404,
            "models: no model 'mlp' version 7 is loaded beside this script (loaded: mlp:1)",
        ),
        (
            lambda: models.infer("mlp", {"input": rows(1).astype(np.float64)}),
            400,
            "models.infer('mlp'): input 'input': datatype is FP64, but the model expects FP32",
        ),
        (
            lambda: models.infer("mlp", {"inputs": rows(1)}),
            400,
            "models.infer('mlp'): input 'input': missing (the model takes input)",
        ),
        (
            lambda: models.infer("mlp", {"input": rows(1)}, outputs=["probabilities"]),
            400,
            "models.infer('mlp'): unexpected inference output 'probabilities' for model 'mlp'",
        ),
        (
            lambda: models.infer("mlp", {"input": rows(1)}, outputs="output"),
            400,
            "models.infer('mlp'): outputs must be a list of output names",
        ),
        (
            lambda: models.infer("mlp", [rows(1)]),  # type: ignore[arg-type]
            400,
            "models.infer('mlp'): inputs must map input names to arrays, not a list",
        ),
    ],
)
def test_failures_name_the_call(attached: ModelRepository, call, status: int, message: str) -> None:  # noqa: ANN001
    with pytest.raises(models.ModelCallError) as failure:
        call()
    assert str(failure.value).startswith(message), str(failure.value)
    assert failure.value.http_status == status


def test_no_models_beside_the_script() -> None:
    script_models.attach(None)
    with pytest.raises(models.ModelCallError, match="no model is loaded beside this script, so 'mlp' cannot be"):
        models.infer("mlp", {"input": rows(1)})


def test_the_blocking_call_is_refused_on_an_event_loop(attached: ModelRepository) -> None:
    async def blocking() -> None:
        models.infer("mlp", {"input": rows(1)})

    with pytest.raises(models.ModelCallError, match=r"running event loop.*use await models.infer_async"):
        asyncio.run(blocking())


def test_a_stopped_server_answers_503(attached: ModelRepository) -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    script_models.serve_on(loop)
    with pytest.raises(models.ModelCallError, match="the server is stopping") as failure:
        models.infer("mlp", {"input": rows(1)})
    assert failure.value.http_status == 503


def test_the_scoring_timeout_lands_while_run_waits_for_a_model(tmp_path: Path) -> None:
    """run() blocked in a call past SCORING_TIMEOUT_MS is interrupted: its slot (the only one)
    frees for the next request at once, not when the model answers after its 2 s queue delay."""
    root = tmp_path / "repo"
    build_mlp_onnx(root / "slow" / "1" / "model.onnx", SIZES)
    slow = CONFIG.replace('"mlp"', '"slow"').replace("50000", "2000000")
    (root / "slow" / "config.pbtxt").write_text(slow)
    repository = ModelRepository(sources_from_repository(root))
    repository.load_all()
    script = tmp_path / "score.py"
    script.write_text(
        "import numpy as np\nfrom modelport import models\n\ndef init():\n    pass\n\n"
        "def run(raw):\n    if raw == 'quick':\n        return 'quick'\n"
        "    return models.infer('slow', {'input': np.zeros((1, 4), np.float32)})['output'].tolist()\n"
    )
    host = ScriptHost(script, timeout_ms=300, models=repository)
    app = Starlette(routes=azureml_routes(host, None, None))

    async def score() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://modelport") as client:
            return [await client.post("/score", content=body) for body in ("slow", "quick")]

    try:
        began = time.monotonic()
        waited, quick = asyncio.run(score())
        elapsed = time.monotonic() - began
    finally:
        script_models.attach(None)
        repository.close()
    assert waited.status_code == 500 and waited.json() == {"message": "Scoring timeout after 300 ms"}
    assert quick.status_code == 200 and quick.json() == "quick"
    assert elapsed < 1.5
