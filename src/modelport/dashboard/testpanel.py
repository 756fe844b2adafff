"""The endpoint page's Test panel: a request sent through the router, from the daemon itself,
with the endpoint's own key, and the answer shown.

The request goes into the router's ASGI app in-process, so it takes the path any client's request
takes (key check, traffic split or a pinned deployment, admission, timeout) and is counted in the
live traffic; the key is added here and never written into a page. The sample body is a v2
inference request built from the signature of a deployment's model, which a pasted body replaces.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.types import ASGIApp

from modelport.core.errors import ValidationError
from modelport.routing.router import DEPLOYMENT_HEADER, PIN_HEADERS, PREFIX

MAX_SHOWN = 64 * 1024  # characters of an answer the page shows
TIMEOUT_S = 60.0
SAMPLE_VALUES = {"BYTES": "", "BOOL": False}  # every other datatype is numeric: 0


@dataclass(frozen=True)
class Answer:
    status: int
    deployment: str
    milliseconds: float
    body: str
    truncated: bool


def sample_request(signature: dict[str, Any] | None) -> str | None:
    """A v2 inference request of one row of zeros shaped by ``signature``'s inputs (a variable
    dimension becomes 1); None without a signature."""
    if not signature or not signature.get("inputs"):
        return None
    inputs = []
    for tensor in signature["inputs"]:
        shape = [1 if size is None or size < 0 else size for size in tensor.get("shape") or [1]]
        value = SAMPLE_VALUES.get(tensor["datatype"], 0)
        inputs.append(
            {"name": tensor["name"], "shape": shape, "datatype": tensor["datatype"], "data": [value] * math.prod(shape)}
        )
    return json.dumps({"inputs": inputs}, indent=1)


async def send(
    router: ASGIApp, endpoint: str, path: str, body: str, *, key: str | None, deployment: str | None
) -> Answer:
    """POST ``body`` to ``path`` of ``endpoint`` through ``router``; the answer, whatever its status."""
    path = path.strip().strip("/")
    if not path:
        raise ValidationError("path: must not be empty (score, or v2/models/NAME/infer)")
    try:
        json.loads(body)
    except ValueError as exc:
        raise ValidationError(f"body: not JSON ({exc})") from None
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    if deployment:
        headers[PIN_HEADERS[0]] = deployment
    transport = httpx.ASGITransport(app=router, client=("127.0.0.1", 0))
    started = time.perf_counter()
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon", timeout=TIMEOUT_S) as client:
        response = await client.post(f"{PREFIX}{endpoint}/{path}", content=body.encode(), headers=headers)
    milliseconds = (time.perf_counter() - started) * 1000
    text = response.text
    try:
        text = json.dumps(response.json(), indent=1)
    except ValueError:
        pass
    return Answer(
        response.status_code,
        response.headers.get(DEPLOYMENT_HEADER, ""),
        milliseconds,
        text[:MAX_SHOWN],
        len(text) > MAX_SHOWN,
    )
