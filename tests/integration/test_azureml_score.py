"""Azure ML ``/score`` compatibility: unmodified scoring scripts behind ``azureml_routes`` and
no-code scoring of a repository model, checked against azmlinfsrv's documented behaviour."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from modelport.core.errors import NotFoundError, ValidationError
from modelport.registry.sources import sources_from_repository
from modelport.samples import build_mlp_onnx
from modelport.serving.http.azureml import azureml_routes
from modelport.serving.repository import ModelRepository
from modelport.serving.scoring_script import RUN_FAILED_MESSAGE, ScriptHost, ScriptInitError


@pytest.fixture(autouse=True)
def _isolated_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hosts set environment variables and extend sys.path; undo both after each test."""
    for name in ("AZUREML_MODEL_DIR", "MODELPORT_MODEL_DIR", "SCORING_TIMEOUT_MS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))


def write_script(folder: Path, source: str, name: str = "score.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def client_for(
    host: ScriptHost | None, repository: ModelRepository | None = None, model: str | None = None
) -> TestClient:
    return TestClient(Starlette(routes=azureml_routes(host, repository, model)))


# --- (a) an Azure-style script around a scikit-learn model ---------------------------------------

SKLEARN_SCRIPT = """
    import json
    import os

    import joblib
    import numpy as np

    def init():
        global model
        model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model.joblib"))

    def run(raw_data):
        data = np.array(json.loads(raw_data)["data"])
        return model.predict(data).tolist()
"""


@pytest.fixture
def sklearn_model(tmp_path: Path):  # noqa: ANN201 - (model dir, fitted model, rows)
    joblib = pytest.importorskip("joblib")
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(7)
    features = rng.normal(size=(200, 4))
    labels = (features @ np.array([1.0, -2.0, 0.5, 1.5]) > 0).astype(int)
    model = linear_model.LogisticRegression(random_state=0).fit(features, labels)
    model_dir = tmp_path / "azureml-models" / "clf" / "1"
    model_dir.mkdir(parents=True)
    joblib.dump(model, model_dir / "model.joblib")
    return model_dir, model, rng.normal(size=(5, 4))


def test_sklearn_script_predicts_like_the_model_in_process(tmp_path: Path, sklearn_model) -> None:  # noqa: ANN001
    model_dir, model, rows = sklearn_model
    host = ScriptHost(write_script(tmp_path / "app", SKLEARN_SCRIPT), model_dir)
    response = client_for(host).post("/score", json={"data": rows.tolist()})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == model.predict(rows).tolist()
    assert float(response.headers["x-ms-run-fn-exec-ms"]) >= 0
    assert response.headers["x-ms-run-function-failed"] == "False"


def test_model_dir_environment_and_helper_modules_beside_the_script(tmp_path: Path) -> None:
    app = tmp_path / "app"
    write_script(app, "PREFIX = 'helper:'\n", name="helpers.py")
    script = write_script(
        app,
        """
        import os
        import helpers

        def init():
            pass

        def run(raw_data):
            return [helpers.PREFIX, os.environ["AZUREML_MODEL_DIR"], os.environ["MODELPORT_MODEL_DIR"]]
    """,
    )
    body = client_for(ScriptHost(script, tmp_path / "models")).post("/score", content=b"x").json()
    assert body == ["helper:", str(tmp_path / "models"), str(tmp_path / "models")]


ECHO_SCRIPT = """
    def init():
        pass

    def run(raw_data, request_headers):
        return {"input": raw_data, "custom": request_headers.get("X-Custom")}
"""


def test_undecorated_run_gets_the_body_unparsed_whatever_the_content_type(tmp_path: Path) -> None:
    client = client_for(ScriptHost(write_script(tmp_path, ECHO_SCRIPT)))
    response = client.post("/score", content=b'{"a": [1, 2]}  ', headers={"Content-Type": "text/plain"})
    assert response.json() == {"input": '{"a": [1, 2]}  ', "custom": None}


def test_get_passes_the_query_string_as_json(tmp_path: Path) -> None:
    client = client_for(ScriptHost(write_script(tmp_path, ECHO_SCRIPT)))
    assert client.get("/score?a=1&b=[1,2]&a=2").json()["input"] == json.dumps({"a": [1, 2], "b": [1, 2]})
    assert client.get("/score?c=text&d=null").json()["input"] == json.dumps({"c": "text", "d": None})
    assert client.get("/score").json()["input"] == "{}"


def test_request_headers_parameter_receives_the_headers(tmp_path: Path) -> None:
    client = client_for(ScriptHost(write_script(tmp_path, ECHO_SCRIPT)))
    assert client.post("/score", content=b"x", headers={"x-custom": "value"}).json()["custom"] == "value"


def test_return_values_are_json_encoded(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        """
        import numpy as np
        import pandas as pd

        def init():
            pass

        VALUES = {
            "none": None, "text": "hello", "array": np.arange(3, dtype=np.float32), "scalar": np.int64(4),
            "frame": pd.DataFrame({"a": [1, 2]}), "series": pd.Series([0.5]), "bytes": b"raw",
        }

        def run(raw_data):
            return VALUES[raw_data]
    """,
    )
    client = client_for(ScriptHost(script))
    assert client.post("/score", content=b"none").content == b"{}"
    assert client.post("/score", content=b"text").content == b'"hello"'  # a str is encoded again
    assert client.post("/score", content=b"array").json() == [0.0, 1.0, 2.0]
    assert client.post("/score", content=b"scalar").json() == 4
    assert client.post("/score", content=b"frame").json() == [{"a": 1}, {"a": 2}]
    assert client.post("/score", content=b"series").json() == [0.5]
    unserialisable = client.post("/score", content=b"bytes")
    assert unserialisable.status_code == 500
    assert unserialisable.json() == {"message": "An unexpected internal error occurred. Check the logs for more info."}


def test_options_and_wrong_verbs(tmp_path: Path) -> None:
    client = client_for(ScriptHost(write_script(tmp_path, ECHO_SCRIPT)))
    options = client.options("/score")
    assert (options.status_code, options.content) == (200, b"")
    for method in ("PUT", "DELETE", "PATCH"):
        response = client.request(method, "/score")
        assert response.status_code == 405
        assert response.json() == {"message": "The method is not allowed for the requested URL."}
    assert client.get("/").text == "Healthy"
    assert client.post("/").status_code == 405


# --- (b) inference-schema decorated scripts ---------------------------------------------------------

NUMPY_SCRIPT = """
    import numpy as np
    from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
    from inference_schema.schema_decorators import input_schema, output_schema

    def init():
        pass

    @input_schema("data", NumpyParameterType(np.array([[1.0, 2.0]])))
    @output_schema(NumpyParameterType(np.array([1.0])))
    def run(data):
        assert isinstance(data, np.ndarray)
        return data.sum(axis=1)
"""


@pytest.fixture
def numpy_client(tmp_path: Path) -> TestClient:
    pytest.importorskip("inference_schema")
    return client_for(ScriptHost(write_script(tmp_path, NUMPY_SCRIPT)))


def test_numpy_schema_converts_the_json_argument(numpy_client: TestClient) -> None:
    response = numpy_client.post("/score", json={"data": [[1.0, 2.0], [3.0, 4.5]], "ignored": True})
    assert response.status_code == 200
    assert response.json() == [3.0, 7.5]
    assert numpy_client.get("/score", params={"data": "[[1, 1]]"}).json() == [2.0]


def test_numpy_schema_swagger_describes_the_input(numpy_client: TestClient) -> None:
    v2 = numpy_client.get("/swagger.json").json()
    assert v2["swagger"] == "2.0"
    service_input = v2["definitions"]["ServiceInput"]
    assert service_input["properties"]["data"]["format"] == "numpy.ndarray"
    assert service_input["properties"]["data"]["items"]["items"]["type"] == "number"
    assert service_input["example"] == {"data": [[1.0, 2.0]]}
    assert v2["definitions"]["ServiceOutput"]["format"] == "numpy.ndarray"
    assert "/score" in v2["paths"]
    v3 = numpy_client.get("/swagger.json", params={"version": "3"}).json()
    assert v3["openapi"] == "3.0.3"
    assert v3["components"]["schemas"]["ServiceInput"] == service_input
    assert numpy_client.get("/swagger.json", params={"version": "3.1"}).json()["openapi"] == "3.1.0"
    bad = numpy_client.get("/swagger.json", params={"version": "4"})
    assert bad.status_code == 404
    assert bad.json() == {"message": "Swagger version [4] is not valid. Supported versions: [2, 3, 3.1]."}


@pytest.mark.parametrize(
    ("content", "content_type", "status", "message"),
    [
        (b'{"data": [[1, 2]]}', "text/plain", 415, "Expects Content-Type to be application/json"),
        (b"", "application/json", 400, "POST body is empty. Expecting a JSON dictionary."),
        (b"[1, 2]", "application/json", 400, "POST body should be a JSON dictionary."),
        (b'{"other": 1}', "application/json", 400, "A value is not provided for the 'data' parameter."),
    ],
)
def test_schema_input_errors(
    numpy_client: TestClient, content: bytes, content_type: str, status: int, message: str
) -> None:
    response = numpy_client.post("/score", content=content, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert response.json() == {"message": message}


def test_schema_bad_json_and_conversion_failures(numpy_client: TestClient) -> None:
    bad_json = numpy_client.post("/score", content=b"{", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400
    assert bad_json.json()["message"].startswith("POST body could not be decoded as JSON: ")
    wrong_shape = numpy_client.post("/score", json={"data": [[1.0, 2.0, 3.0]]})  # the decorator rejects it
    assert wrong_shape.status_code == 500
    assert wrong_shape.json() == {"message": RUN_FAILED_MESSAGE}
    assert wrong_shape.headers["x-ms-run-function-failed"] == "True"


PANDAS_SCRIPT = """
    import pandas as pd
    from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
    from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
    from inference_schema.schema_decorators import input_schema

    def init():
        pass

    @input_schema("frame", PandasParameterType(pd.DataFrame({"a": [1.0], "b": [2.0]})))
    @input_schema("scale", StandardPythonParameterType(1.0))
    def run(frame, scale=1.0):
        assert isinstance(frame, pd.DataFrame)
        return (frame["a"] + frame["b"]) * scale
"""


def test_pandas_schema_script(tmp_path: Path) -> None:
    pytest.importorskip("inference_schema")
    pytest.importorskip("pandas")
    client = client_for(ScriptHost(write_script(tmp_path, PANDAS_SCRIPT)))
    records = [{"a": 1, "b": 2}, {"a": 3.5, "b": 0.5}]
    assert client.post("/score", json={"frame": records}).json() == [3.0, 4.0]
    assert client.post("/score", json={"frame": records, "scale": 2}).json() == [6.0, 8.0]
    properties = client.get("/swagger.json").json()["definitions"]["ServiceInput"]["properties"]
    assert properties["frame"]["format"] == "pandas.DataFrame:records"
    assert set(properties["frame"]["items"]["properties"]) == {"a", "b"}
    assert properties["scale"]["type"] == "number"


def test_user_swagger_file_beside_the_script_wins(tmp_path: Path) -> None:
    pytest.importorskip("inference_schema")
    script = write_script(tmp_path, NUMPY_SCRIPT)
    (tmp_path / "swagger2.json").write_text(json.dumps({"swagger": "2.0", "info": {"title": "mine"}}))
    client = client_for(ScriptHost(script))
    assert client.get("/swagger.json").json() == {"swagger": "2.0", "info": {"title": "mine"}}
    assert client.get("/swagger.json?version=3").json()["openapi"] == "3.0.3"


def test_undecorated_script_swagger_has_empty_object_schemas(tmp_path: Path) -> None:
    document = client_for(ScriptHost(write_script(tmp_path, ECHO_SCRIPT))).get("/swagger.json?version=2.0").json()
    assert document["definitions"]["ServiceInput"] == {"type": "object", "example": {}}
    assert document["info"]["title"] == "ML service"


# --- (c) @rawhttp and AMLResponse -----------------------------------------------------------------

RAW_SCRIPT = """
    from azureml.contrib.services.aml_request import AMLRequest, rawhttp
    from azureml.contrib.services.aml_response import AMLResponse

    def init():
        pass

    @rawhttp
    def run(request: AMLRequest):
        if request.method == "GET":
            return AMLResponse(f"x={request.args.get('x')}", 202, {"X-Custom": "a, b", "Content-Type": "text/plain"})
        if request.method == "OPTIONS":
            return AMLResponse(None, 299)
        if request.mimetype == "multipart/form-data":
            upload = request.files["file"]
            return {"field": request.form["field"], "name": upload.filename, "size": len(upload.read())}
        if request.args.get("stream"):
            return AMLResponse((chunk for chunk in ["one,", "two"]), 200)
        if request.args.get("fail"):
            return AMLResponse({"why": "model missing"}, 503, json_str=True)
        return AMLResponse(
            {"echo": request.get_json(), "type": request.headers["content-type"], "raw": request.get_data(as_text=True)},
            201,
            json_str=True,
        )
"""


@pytest.fixture
def raw_client(tmp_path: Path) -> TestClient:
    return client_for(ScriptHost(write_script(tmp_path, RAW_SCRIPT)))


def test_rawhttp_gets_the_request_and_amlresponse_sets_status_and_headers(raw_client: TestClient) -> None:
    get = raw_client.get("/score?x=42")
    assert (get.status_code, get.text) == (202, "x=42")
    assert get.headers.get_list("x-custom") == ["a", "b"]  # commas become repeated headers
    assert get.headers["content-type"] == "text/plain"
    assert get.headers["x-ms-run-function-failed"] == "False"
    assert "x-ms-run-fn-exec-ms" in get.headers

    post = raw_client.post("/score", json={"k": [1, 2]})
    assert post.status_code == 201
    assert post.json() == {"echo": {"k": [1, 2]}, "type": "application/json", "raw": '{"k":[1,2]}'}

    options = raw_client.options("/score")  # a rawhttp run() gets OPTIONS too
    assert (options.status_code, options.json()) == (299, {})


def test_amlresponse_failure_status_streaming_and_files(raw_client: TestClient) -> None:
    failed = raw_client.post("/score?fail=1", content=b"")
    assert failed.status_code == 503
    assert failed.json() == {"why": "model missing"}
    assert failed.headers["x-ms-run-function-failed"] == "True"

    streamed = raw_client.post("/score?stream=1", content=b"")
    assert (streamed.status_code, streamed.text) == (200, "one,two")
    assert streamed.headers["content-type"] == "text/html; charset=utf-8"

    upload = raw_client.post("/score", data={"field": "v"}, files={"file": ("image.png", b"\x89PNG....")})
    assert upload.json() == {"field": "v", "name": "image.png", "size": 8}


def test_rawhttp_through_the_azmlinfsrv_import_path(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        """
        from azureml_inference_server_http.api.aml_request import rawhttp
        from azureml_inference_server_http.api.aml_response import AMLResponse

        def init():
            pass

        @rawhttp
        def run(request):
            return AMLResponse(request.data, 200, {"Content-Type": "application/octet-stream"})
    """,
    )
    response = client_for(ScriptHost(script)).post("/score", content=b"\x00\xff")
    assert (response.status_code, response.content) == (200, b"\x00\xff")


# --- (d) failures in run(), (e) bad UTF-8 ------------------------------------------------------------

FLAKY_SCRIPT = """
    def init():
        pass

    def run(raw_data):
        if raw_data == "fail":
            raise ValueError("secret detail")
        return raw_data
"""


def test_exception_in_run_is_a_500_and_the_next_request_succeeds(tmp_path: Path) -> None:
    client = client_for(ScriptHost(write_script(tmp_path, FLAKY_SCRIPT)))
    failed = client.post("/score", content=b"fail")
    assert failed.status_code == 500
    assert failed.json() == {"message": RUN_FAILED_MESSAGE}
    assert "secret detail" not in failed.text
    assert failed.headers["x-ms-run-function-failed"] == "True"
    assert "x-ms-run-fn-exec-ms" not in failed.headers
    assert client.post("/score", content=b"fine").json() == "fine"


def test_body_that_is_not_utf8_is_a_400(tmp_path: Path) -> None:
    response = client_for(ScriptHost(write_script(tmp_path, FLAKY_SCRIPT))).post("/score", content=b"\xff")
    assert response.status_code == 400
    assert response.json() == {
        "message": "Input cannot be decoded as UTF-8: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"
    }


# --- (f) scripts that cannot serve ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (
            "def init():\n    raise RuntimeError('no model.pkl in AZUREML_MODEL_DIR')\ndef run(d):\n    pass\n",
            "init() failed: RuntimeError: no model.pkl in AZUREML_MODEL_DIR",
        ),
        ("def init():\n    pass\n", "does not have a run() function defined"),
        ("def run(d):\n    pass\n", "does not have a init() function defined"),
        ("import not_a_real_module_xyz\n", "import failed: ModuleNotFoundError"),
        ("def init():\n    pass\ndef run(*args):\n    pass\n", "run() cannot accept positional-only arguments"),
        (
            "def init():\n    pass\ndef run(request_headers):\n    pass\n",
            'accept an argument other than "request_headers"',
        ),
    ],
)
def test_script_that_cannot_serve_raises_script_init_error(tmp_path: Path, source: str, reason: str) -> None:
    with pytest.raises(ScriptInitError) as failure:
        ScriptHost(write_script(tmp_path, source))
    assert reason in str(failure.value)
    assert failure.value.http_status == 500


def test_init_runs_once(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        """
        calls = []

        def init():
            calls.append(1)

        def run(raw_data):
            return len(calls)
    """,
    )
    client = client_for(ScriptHost(script))
    assert [client.post("/score", content=b"").json() for _ in range(3)] == [1, 1, 1]


# --- (g) the scoring timeout ------------------------------------------------------------------------

SLOW_SCRIPT = """
    import time

    def init():
        pass

    def run(raw_data):
        if raw_data == "spin":
            while True:
                pass
        if raw_data == "sleep":
            time.sleep(0.6)
        return "done"
"""


def test_scoring_timeout_interrupts_run_and_keeps_serving(tmp_path: Path) -> None:
    client = client_for(ScriptHost(write_script(tmp_path, SLOW_SCRIPT), timeout_ms=200))
    started = time.perf_counter()
    response = client.post("/score", content=b"spin")
    assert time.perf_counter() - started < 5
    assert response.status_code == 500
    assert response.json() == {"message": "Scoring timeout after 200 ms"}
    assert response.headers["x-ms-run-function-failed"] == "True"
    assert client.post("/score", content=b"fast").json() == "done"  # the spinning run() was interrupted
    assert client.get("/").text == "Healthy"


def test_scoring_timeout_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_TIMEOUT_MS", "150")
    host = ScriptHost(write_script(tmp_path, SLOW_SCRIPT))
    assert host.timeout_ms == 150
    client = client_for(host)
    assert client.post("/score", content=b"sleep").json() == {"message": "Scoring timeout after 150 ms"}
    assert client.post("/score", content=b"fast").json() == "done"  # waits for the sleeping call, then runs


CONCURRENCY_SCRIPT = """
    import threading
    import time

    lock = threading.Lock()
    active = peak = 0

    def init():
        pass

    def run(raw_data):
        global active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.1)
        with lock:
            active -= 1
        return peak
"""


@pytest.mark.parametrize(("declared", "expected_peak"), [("", 1), ("MODELPORT_CONCURRENCY = 2", 2)])
def test_one_request_at_a_time_unless_the_script_says_otherwise(
    tmp_path: Path, declared: str, expected_peak: int
) -> None:
    host = ScriptHost(write_script(tmp_path, textwrap.dedent(CONCURRENCY_SCRIPT) + declared + "\n"))
    app = Starlette(routes=azureml_routes(host, None, None))

    async def score_four() -> list[int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://modelport") as client:
            responses = await asyncio.gather(*(client.post("/score", content=b"") for _ in range(4)))
        return [response.json() for response in responses]

    assert max(asyncio.run(score_four())) == expected_peak


# --- (h) request id headers -------------------------------------------------------------------------


def test_request_id_headers(tmp_path: Path) -> None:
    client = client_for(ScriptHost(write_script(tmp_path, FLAKY_SCRIPT)))
    generated = client.post("/score", content=b"x")
    assert uuid.UUID(generated.headers["x-request-id"])
    assert generated.headers["x-ms-request-id"] == generated.headers["x-request-id"]
    assert "x-ms-client-request-id" not in generated.headers

    given = client.post(
        "/score",
        content=b"fail",
        headers={"x-request-id": "req-1", "x-ms-client-request-id": "cli-1", "TraceId": "t-1"},
    )
    assert given.headers["x-request-id"] == "req-1"
    assert given.headers["x-ms-client-request-id"] == "cli-1"
    assert given.headers["x-ms-request-id"] == "cli-1"
    assert given.headers["traceid"] == "t-1"

    legacy = client.post("/score", content=b"x", headers={"x-ms-request-id": "old"})
    assert legacy.headers["x-ms-request-id"] == legacy.headers["x-ms-client-request-id"] == "old"

    too_long = client.post("/score", content=b"x", headers={"x-request-id": "A" * 101})
    assert too_long.status_code == 431
    assert too_long.json() == {"message": "x-request-id must not exceed 100 characters"}
    assert "x-request-id" not in too_long.headers
    assert client.post("/score", content=b"x", headers={"x-request-id": "A" * 100}).status_code == 200
    client_too_long = client.post(
        "/score", content=b"x", headers={"x-request-id": "r", "x-ms-client-request-id": "B" * 101}
    )
    assert client_too_long.status_code == 431
    assert client_too_long.headers["x-request-id"] == "r"


def test_run_cannot_overwrite_the_request_id(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        """
        from azureml.contrib.services.aml_response import AMLResponse

        def init():
            pass

        def run(raw_data):
            response = AMLResponse("", 200)
            response.headers["x-request-id"] = "from-the-script"
            return response
    """,
    )
    response = client_for(ScriptHost(script)).get("/score", headers={"x-request-id": "mine"})
    assert response.headers["x-request-id"] == "mine"


# --- (i) no-code scoring of a repository model ------------------------------------------------------


@pytest.fixture
def mlp_repository(tmp_path: Path) -> Iterator[tuple[ModelRepository, Path]]:
    model_file = build_mlp_onnx(tmp_path / "repo" / "mlp" / "1" / "model.onnx")
    repository = ModelRepository(sources_from_repository(tmp_path / "repo"))
    repository.load_all()
    yield repository, model_file
    repository.close()


def _onnxruntime_outputs(model_file: Path, rows: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": rows})[0]


def test_no_code_scoring_matches_onnxruntime(mlp_repository: tuple[ModelRepository, Path]) -> None:
    repository, model_file = mlp_repository
    client = client_for(None, repository, "mlp")
    rows = np.random.default_rng(3).normal(size=(3, 32)).astype(np.float32)
    expected = _onnxruntime_outputs(model_file, rows)
    frame = {"columns": [f"f{i}" for i in range(32)], "index": [0, 1, 2], "data": rows.tolist()}
    for payload in (
        {"data": rows.tolist()},
        {"input_data": rows.tolist()},
        {"input_data": {"input": rows.tolist()}},
        {"input_data": frame},
    ):
        response = client.post("/score", json=payload)
        assert response.status_code == 200, response.text
        assert "x-request-id" in response.headers
        np.testing.assert_allclose(np.asarray(response.json(), dtype=np.float32), expected, rtol=1e-6, atol=1e-6)


def test_no_code_scoring_uses_the_only_model_by_default(mlp_repository: tuple[ModelRepository, Path]) -> None:
    repository, _ = mlp_repository
    response = client_for(None, repository).post("/score", json={"data": [[0.5] * 32]})
    assert response.status_code == 200
    assert np.asarray(response.json()).shape == (1, 4)


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b'{"rows": [[1.0]]}', '"input_data"'),
        (b'{"input_data": "text"}', "input_data"),
        (b'{"data": [[1.0, 2.0]]}', "'input'"),
        (b'{"input_data": {"nope": [[1.0]]}}', "input_data['nope']"),
        (b'{"input_data": [["a", "b"]]}', "input_data['input']"),
        (b'{"input_data": {"columns": ["x"], "data": 5}}', "input_data"),
        (b"not json", "body"),
        (b"[1, 2]", "body"),
    ],
)
def test_no_code_malformed_payloads_are_400(
    mlp_repository: tuple[ModelRepository, Path], content: bytes, named: str
) -> None:
    repository, _ = mlp_repository
    response = client_for(None, repository, "mlp").post(
        "/score", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert named in response.json()["message"]


def test_no_code_routes(mlp_repository: tuple[ModelRepository, Path]) -> None:
    repository, _ = mlp_repository
    client = client_for(None, repository, "mlp")
    assert client.get("/score").status_code == 405
    assert client.options("/score").status_code == 200
    assert client.get("/swagger.json").json()["swagger"] == "2.0"
    assert client.get("/").text == "Healthy"


def test_no_code_needs_a_model_it_can_name(mlp_repository: tuple[ModelRepository, Path], tmp_path: Path) -> None:
    repository, _ = mlp_repository
    with pytest.raises(NotFoundError, match="default_model"):
        azureml_routes(None, repository, "missing")
    build_mlp_onnx(tmp_path / "two" / "a" / "1" / "model.onnx")
    build_mlp_onnx(tmp_path / "two" / "b" / "1" / "model.onnx")
    with pytest.raises(ValidationError, match="holds 2 models"):
        azureml_routes(None, ModelRepository(sources_from_repository(tmp_path / "two")), None)
