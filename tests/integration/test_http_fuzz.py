"""Property-based fuzzing of the v2 HTTP front end in-process: whatever the body, headers or
path, the answer is a 4xx with a JSON reason (never a 500, a hang or a crash), and the
documented OpenAPI paths are exactly the served ones."""

from __future__ import annotations

import json
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport.registry.sources import sources_from_repository
from modelport.samples import build_dtypes_onnx, build_mlp_onnx
from modelport.serving.http.app import build_app
from modelport.serving.http.openapi import openapi_document
from modelport.serving.repository import ModelRepository

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    root = tmp_path_factory.mktemp("fuzzrepo")
    build_mlp_onnx(root / "mlp" / "1" / "model.onnx")
    build_dtypes_onnx(root / "dtypes" / "1" / "model.onnx")
    repository = ModelRepository(sources_from_repository(root))
    repository.load_all()
    with TestClient(build_app(repository, max_body=1 << 20), raise_server_exceptions=False) as test_client:
        yield test_client
    repository.close()


DATATYPES = ["BOOL", "UINT8", "INT32", "INT64", "FP16", "FP32", "FP64", "BF16", "BYTES", "FP33", "", 7]
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=8)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)
tensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["input", "ints", "flags", "words", "nope", ""]),
        "datatype": st.sampled_from(DATATYPES),
        "shape": st.lists(st.integers(-2, 40), max_size=4),
    },
    optional={
        "data": json_value,
        "parameters": st.dictionaries(st.sampled_from(["binary_data_size", "x"]), st.integers(-5, 200), max_size=1),
    },
)
request_doc = st.fixed_dictionaries(
    {"inputs": st.lists(tensor, max_size=3)},
    optional={
        "id": json_leaf,
        "outputs": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["output", "ints_out", "zzz"])},
                optional={
                    "parameters": st.dictionaries(
                        st.sampled_from(["binary_data", "classification"]), json_leaf, max_size=2
                    )
                },
            ),
            max_size=2,
        ),
        "parameters": st.dictionaries(st.sampled_from(["binary_data_output", "k"]), json_leaf, max_size=2),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    doc=request_doc,
    model=st.sampled_from(["mlp", "dtypes"]),
    tail=st.binary(max_size=64),
    header=st.one_of(st.none(), st.integers(-10, 400)),
)
def test_structured_requests_never_500(
    client: TestClient, doc: dict, model: str, tail: bytes, header: int | None
) -> None:
    body = json.dumps(doc).encode()
    headers = {} if header is None else {"Inference-Header-Content-Length": str(header)}
    response = client.post(
        f"/v2/models/{model}/infer", content=body + (tail if header is not None else b""), headers=headers
    )
    assert response.status_code in (200, 400, 413), response.text
    if response.status_code != 200:
        assert isinstance(response.json()["error"], str)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=256),
    path=st.sampled_from(
        [
            "/v2/models/mlp/infer",
            "/v2/models/mlp/versions/1/infer",
            "/v2/repository/index",
            "/v2/repository/models/mlp/load",
            "/v2/models/x%00y/infer",
        ]
    ),
)
def test_random_bytes_never_500(client: TestClient, body: bytes, path: str) -> None:
    response = client.post(path, content=body)
    assert response.status_code < 500, response.text


def test_openapi_documents_every_route(client: TestClient) -> None:
    served = {route.path.replace("{version:int}", "{version}") for route in client.app.app.routes}
    documented = set(openapi_document()["paths"])
    assert served == documented
    assert client.get("/v2/openapi.json").json()["openapi"].startswith("3.")
