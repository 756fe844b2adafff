"""What a packaged image runs: ``modelport serve`` on the packaged model or scoring script, with
the settings recorded in ``serve.json`` at package time and what the container's environment
says on top.

It replaces itself with the server (``exec``), so the server is the container's main process and
receives ``docker stop``'s SIGTERM itself (it then drains in-flight requests and exits 0).

Environment variables, as Azure ML's inference images read them:

- ``MODELPORT_HOST`` — the address to bind (the image sets 0.0.0.0); ``MODELPORT_HTTP_PORT``,
  ``MODELPORT_GRPC_PORT``, ``MODELPORT_METRICS_PORT`` — the ports (8000, 8001, 8002).
- ``WORKER_COUNT`` — server processes sharing the ports (``serve --workers``).
- ``MODELPORT_REQUEST_LOG`` — where the request log goes: standard output by default (``-``), so
  the container runtime collects it; a file path inside the container; empty for none.
- ``AZUREML_ENTRY_SCRIPT`` — the scoring script, relative to the packaged code folder.
- ``AZUREML_MODEL_DIR`` — the model folder a scoring script sees (default: the packaged one).

Arguments given to the container (``docker run IMAGE --max-body-mb 10``) are passed on to
``serve`` after everything else, so they win.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

SETTINGS = Path("/opt/modelport/serve.json")
_PORTS = (("MODELPORT_HTTP_PORT", "--http-port"), ("MODELPORT_GRPC_PORT", "--grpc-port"),
          ("MODELPORT_METRICS_PORT", "--metrics-port"))  # fmt: skip


def serve_command(settings: Mapping[str, object], environ: Mapping[str, str], argv: Sequence[str]) -> list[str]:
    """The ``modelport serve`` command line (after ``python -m modelport``) for ``settings``
    (``serve.json``), the environment and the container's arguments."""
    root = SETTINGS.parent
    command = ["serve"]
    script = environ.get("AZUREML_ENTRY_SCRIPT") or settings.get("entry_script")
    if script:
        command += ["--entry-script", str(root / "code" / str(script))]
        model_dir = environ.get("AZUREML_MODEL_DIR") or _packaged_model_dir(root / "model")
        if model_dir:
            command += ["--model-dir", model_dir]
    else:
        command.append(str(root / "model"))
    command += ["--host", environ.get("MODELPORT_HOST", "0.0.0.0")]
    request_log = environ.get("MODELPORT_REQUEST_LOG", "-")  # stdout, where a container's logs go; "" = none
    if request_log:
        command += ["--request-log", request_log]
    for variable, option in _PORTS:
        if environ.get(variable):
            command += [option, environ[variable]]
    if environ.get("WORKER_COUNT"):
        command += ["--workers", environ["WORKER_COUNT"]]
    args = settings.get("args") or []
    assert isinstance(args, list)
    return [*command, *(str(arg) for arg in args), *argv]


def _packaged_model_dir(folder: Path) -> str | None:
    """``model/<name>/<version>``, the packaged version's folder (what AZUREML_MODEL_DIR means)."""
    from modelport.serving.targets import PACKAGED_MODEL

    facts = folder / PACKAGED_MODEL
    if not facts.is_file():
        return None
    model = json.loads(facts.read_text(encoding="utf-8"))
    return str(folder / model["name"] / str(model["version"]))


def main() -> None:
    settings = json.loads(SETTINGS.read_text(encoding="utf-8"))
    command = serve_command(settings, os.environ, sys.argv[1:])
    if settings.get("entry_script"):
        os.chdir(SETTINGS.parent / "code")  # a scoring script runs from its code folder, as in Azure
    os.execv(sys.executable, [sys.executable, "-m", "modelport", *command])


if __name__ == "__main__":
    main()
