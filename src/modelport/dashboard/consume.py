"""The endpoint page's Consume panel: how a client calls the endpoint, as curl, Python (requests)
and tritonclient snippets.

A snippet reads the key from ``$ENDPOINT_KEY`` until the page's reveal form is used; only then is
the key itself written into it (and so into that one answer), as Azure's Consume tab does.
"""

from __future__ import annotations

import json
from typing import Any

from modelport.dashboard.testpanel import sample_request

KEY_VARIABLE = "ENDPOINT_KEY"


def snippets(
    base_url: str, endpoint: str, *, key: str | None, model: str | None, signature: dict[str, Any] | None
) -> dict[str, str]:
    """``{"curl": ..., "python": ..., "tritonclient": ...}``, each sending the request built from
    ``signature`` (or ``{}``); tritonclient only with a model and a signature (it speaks v2
    inference to a model deployment)."""
    body = json.loads(sample_request(signature) or "{}")
    scoring_uri = f"{base_url}/endpoints/{endpoint}/score"
    shell_key = key if key is not None else f"${KEY_VARIABLE}"
    python_key = json.dumps(key) if key is not None else f'os.environ["{KEY_VARIABLE}"]'
    found = {
        "curl": (
            f'curl -X POST {scoring_uri} \\\n  -H "Authorization: Bearer {shell_key}" \\\n'
            '  -H "Content-Type: application/json" \\\n  -d @request.json'
        ),
        "python": "\n".join(
            [
                *(["import os", ""] if key is None else []),
                "import requests",
                "",
                f"key = {python_key}",
                "answer = requests.post(",
                f'    "{scoring_uri}",',
                f"    json={body!r},",
                '    headers={"Authorization": f"Bearer {key}"},',
                "    timeout=60,",
                ")",
                "answer.raise_for_status()",
                "print(answer.json())",
            ]
        ),
    }
    if model and signature and signature.get("inputs"):
        secure = base_url.startswith("https://")
        address = base_url.split("://", 1)[1] + f"/endpoints/{endpoint}"
        lines = [
            *(["import os", ""] if key is None else []),
            "import numpy as np",
            "import tritonclient.http as httpclient",
            "from tritonclient.utils import triton_to_np_dtype",
            "",
            f"key = {python_key}",
            f'client = httpclient.InferenceServerClient("{address}"{", ssl=True" if secure else ""})',
            "inputs = []",
        ]
        for tensor in signature["inputs"]:
            shape = [1 if size is None or size < 0 else size for size in tensor.get("shape") or [1]]
            lines += [
                f'tensor = httpclient.InferInput("{tensor["name"]}", {shape}, "{tensor["datatype"]}")',
                f'tensor.set_data_from_numpy(np.zeros({shape}, dtype=triton_to_np_dtype("{tensor["datatype"]}")))',
                "inputs.append(tensor)",
            ]
        lines += [
            f'answer = client.infer("{model}", inputs, headers={{"Authorization": f"Bearer {{key}}"}})',
            *(f'print(answer.as_numpy("{t["name"]}"))' for t in signature.get("outputs", [])),
        ]
        found["tritonclient"] = "\n".join(lines)
    return found
