"""Host an unmodified Azure ML scoring script (``score.py``) the way ``azmlinfsrv`` does.

Loading (azmlinfsrv ``user_script.py``): the script's folder plays ``AML_APP_ROOT`` and goes on
``sys.path``; ``AZUREML_MODEL_DIR`` (and ``MODELPORT_MODEL_DIR``) are set before the script is
imported; a ``driver_module`` attribute's ``run`` replaces the script's own; ``init()`` runs once.
Anything that would make azmlinfsrv exit 3 raises :class:`ScriptInitError` instead.

Calling (azmlinfsrv ``input_parsers.py``/``routes.py``), decided once from ``run``'s signature:

* ``@rawhttp`` → the first parameter gets an ``AMLRequest`` for every method;
* ``@input_schema`` → the JSON object body (or parsed query string) supplies each parameter by
  name, and the inference-schema decorator itself converts the values;
* otherwise → the first parameter gets the body as an unparsed str (GET: the query as JSON);
* a parameter named ``request_headers`` gets the headers as a dict.

``run`` executes in its own thread so the event loop keeps serving; a semaphore admits one call
at a time (AML's sync worker) unless the script sets ``MODELPORT_CONCURRENCY``. A script that sets
``MODELPORT_MAX_BATCH_SIZE`` gets lists of request bodies instead (see ``script_batching``). After
``SCORING_TIMEOUT_MS`` the client gets a 500 and ``TimeoutError`` is raised inside the script
thread, as azmlinfsrv's SIGALRM handler does, so the slot frees as soon as Python code runs again.

Metrics the script makes with :mod:`modelport.metrics` are labelled with ``name`` (the served
model's name; the script's file name by default) and appear on the server's ``/metrics``. The
models the server loads beside the script (``models``) are the ones it calls with
:mod:`modelport.models` (see ``script_models``).
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import importlib
import importlib.util
import inspect
import itertools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import orjson

from modelport.core.errors import ModelportError, ValidationError
from modelport.core.http_errors import UnsupportedMediaType
from modelport.serving import script_metrics, script_models
from modelport.serving.batching import QueueRejected
from modelport.serving.script_batching import script_batcher
from modelport.serving.script_swagger import (
    JSON_TYPE,
    SwaggerNotFound,
    is_schema_decorated,
    script_swaggers,
    swagger_version,
)

if TYPE_CHECKING:
    from modelport.serving.repository import ModelRepository

log = logging.getLogger(__name__)

DEFAULT_SCORING_TIMEOUT_MS = 3_600_000
RUN_FAILED_MESSAGE = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL_ERROR_MESSAGE = "An unexpected internal error occurred. Check the logs for more info."
FAILED_HEADER = "x-ms-run-function-failed"
EXEC_MS_HEADER = "x-ms-run-fn-exec-ms"

COMPAT_DIR = Path(__file__).resolve().parents[1] / "compat"
_SHIM_NAMES = {
    "aml_request": ("azureml.contrib.services.aml_request", "azureml_inference_server_http.api.aml_request"),
    "aml_response": ("azureml.contrib.services.aml_response", "azureml_inference_server_http.api.aml_response"),
}
_LOADING = threading.Lock()  # sys.path / sys.modules edits and script imports, one host at a time
_MODULE_IDS = itertools.count(1)


class ScriptInitError(ModelportError):
    """The scoring script cannot serve: not importable, no init/run, bad run signature, init failed."""

    http_status = 500


@dataclass(frozen=True)
class ScoreRequest:
    """One ``/score`` request, independent of the web framework: full URL, raw headers and body."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes
    remote_addr: str | None = None

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.url).query, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


@dataclass
class ScoreResponse:
    """What to send back: ``body`` is bytes, or an iterable of chunks for a streamed AMLResponse."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | Iterable[bytes] = b""


class ScriptRunError(ModelportError):
    """run() raised (or answered a batch wrongly); the cause is logged, the client gets
    :data:`RUN_FAILED_MESSAGE` as azmlinfsrv words it."""

    http_status = 500

    def __init__(self) -> None:
        super().__init__(RUN_FAILED_MESSAGE)


class ScriptTimeout(ModelportError):
    """run() did not return within the scoring timeout."""

    http_status = 500

    def __init__(self, timeout_ms: int) -> None:
        super().__init__(f"Scoring timeout after {timeout_ms} ms")


class ScriptHost:
    """A loaded and initialised scoring script, ready to answer ``/score`` and ``/swagger.json``."""

    def __init__(
        self,
        script: str | os.PathLike[str],
        model_dir: str | os.PathLike[str] | None = None,
        name: str | None = None,
        *,
        timeout_ms: int | None = None,
        concurrency: int | None = None,
        models: ModelRepository | None = None,
    ) -> None:
        self.script = Path(script).resolve()
        if not self.script.is_file():
            raise ScriptInitError(f"scoring script {script}: no such file")
        self.app_root = self.script.parent
        self.timeout_ms = _timeout_ms(timeout_ms)
        if model_dir is not None:
            os.environ["AZUREML_MODEL_DIR"] = os.environ["MODELPORT_MODEL_DIR"] = str(Path(model_dir).resolve())
        script_metrics.REGISTRY.model = name or self.script.stem
        script_models.attach(models)  # loaded already: init() may call them
        with _LOADING:
            self._request_module, self._response_module = _install_shims()
            module = self._import()
        init, run = self._entry_points(module)
        self._run = run
        self._signature = _RunSignature.of(run, self._request_module.wants_raw_request(run), self.script)
        self.concurrency = _concurrency(concurrency, module, self.script)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        try:
            self._batcher = script_batcher(module, self.script, self._signature.kind, self.concurrency, self._run_batch)
        except ValidationError as exc:
            raise ScriptInitError(str(exc)) from None
        try:
            init()
        except (Exception, SystemExit) as exc:
            raise ScriptInitError(f"scoring script {self.script}: init() failed: {_describe(exc)}") from exc
        try:
            self._swaggers = script_swaggers(self.app_root, run)
        except ValidationError as exc:
            raise ScriptInitError(str(exc)) from None
        log.info("scoring script %s ready (%s run, timeout %d ms)", self.script, self._signature.kind, self.timeout_ms)

    def _import(self) -> ModuleType:
        """Import the script under a unique module name: inference-schema keys schemas by module."""
        if str(self.app_root) not in sys.path:
            sys.path.append(str(self.app_root))
        name = f"modelport_score_{next(_MODULE_IDS)}"
        spec = importlib.util.spec_from_file_location(name, self.script)
        if spec is None or spec.loader is None:
            raise ScriptInitError(f"scoring script {self.script}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses, pickle and typing look the module up here
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            del sys.modules[name]
            raise ScriptInitError(f"scoring script {self.script}: import failed: {_describe(exc)}") from exc
        return module

    def _entry_points(self, module: ModuleType) -> tuple[Callable[[], Any], Callable[..., Any]]:
        for name in ("init", "run"):
            if not callable(getattr(module, name, None)):
                raise ScriptInitError(f"scoring script {self.script}: does not have a {name}() function defined")
        driver = getattr(module, "driver_module", None)
        run = driver.run if isinstance(driver, ModuleType) and callable(getattr(driver, "run", None)) else module.run
        return module.init, run

    async def call(self, request: ScoreRequest) -> ScoreResponse:
        """Answer one ``/score`` request exactly as azmlinfsrv would (status, body, run headers)."""
        script_models.serve_on(asyncio.get_running_loop())  # where run()'s model calls go
        method = request.method.upper()
        if not self._signature.raw and method not in ("GET", "POST"):
            if method == "OPTIONS":
                return ScoreResponse(200, [(FAILED_HEADER, "False")], b"")
            return _message(405, "Method not allowed")
        try:
            kwargs = self._arguments(request, method)
        except ModelportError as exc:  # azmlinfsrv's BadInput (400) and UnsupportedInput (415)
            return _message(exc.http_status, str(exc))
        try:
            if self._batcher is None:
                value, elapsed_ms = await self._invoke(kwargs)
            else:
                value, elapsed_ms = (await self._batcher.submit(kwargs)).outputs
        except QueueRejected as exc:
            return _message(exc.http_status, str(exc))
        except ScriptTimeout as exc:
            log.error("scoring script %s: run() did not finish within %d ms", self.script, self.timeout_ms)
            return _message(exc.http_status, str(exc), failed=True)
        except ScriptRunError as exc:
            log.error("scoring script %s: run() failed", self.script, exc_info=exc.__cause__)
            return _message(exc.http_status, str(exc), failed=True)
        try:
            response = self._response(value)
        except (TypeError, ValueError, orjson.JSONEncodeError) as exc:
            log.error("scoring script %s: run() returned a value that is not JSON serialisable: %s", self.script, exc)
            return _message(500, INTERNAL_ERROR_MESSAGE)
        response.headers.append((EXEC_MS_HEADER, f"{elapsed_ms:.3f}"))
        return response

    def _arguments(self, request: ScoreRequest, method: str) -> dict[str, Any]:
        signature = self._signature
        if signature.raw:
            aml_request = self._request_module.AMLRequest(
                method, request.url, request.headers, request.body, request.remote_addr
            )
            kwargs: dict[str, Any] = {signature.data_params[0].name: aml_request}
        elif signature.schema:
            body = _query_object(request.query) if method == "GET" else _json_object_body(request)
            kwargs = _schema_arguments(signature.data_params, body)
        elif method == "GET":
            kwargs = {signature.data_params[0].name: json.dumps(_query_object(request.query))}
        else:
            try:
                kwargs = {signature.data_params[0].name: request.body.decode("utf-8")}
            except UnicodeDecodeError as exc:
                raise ValidationError(f"Input cannot be decoded as UTF-8: {exc}") from None
        if signature.takes_headers:
            kwargs["request_headers"] = _header_dict(request.headers)
        return kwargs

    async def _invoke(self, kwargs: dict[str, Any]) -> tuple[Any, float]:
        """Run ``run(**kwargs)`` in a fresh thread once a slot is free; the timeout starts with run()."""
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()
        finished: asyncio.Future[tuple[Any, float]] = loop.create_future()
        call = _ThreadCall()

        def target() -> None:
            try:
                with self._slots:
                    call.enter()
                    _notify(loop, started, None)
                    begin = time.perf_counter()
                    try:
                        value = self._run(**kwargs)
                    finally:
                        call.leave()
                _notify(loop, finished, (value, (time.perf_counter() - begin) * 1000))
            except BaseException as exc:  # noqa: BLE001 - everything run() raises, the timeout included
                _notify(loop, finished, None, exc)

        # run() sees the request's context (its trace: the data collector's Collector reads the id)
        threading.Thread(
            target=contextvars.copy_context().run, args=(target,), name=f"score-{self.script.stem}", daemon=True
        ).start()
        either: set[asyncio.Future[Any]] = {started, finished}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        done, _ = await asyncio.wait({finished}, timeout=self.timeout_ms / 1000)
        if not done:
            call.interrupt()
            finished.add_done_callback(_retrieve)  # its late TimeoutError has no one left to tell
            raise ScriptTimeout(self.timeout_ms)
        error = finished.exception()
        if error is not None:
            raise ScriptRunError() from error
        return finished.result()

    def _run_batch(self, requests: list[dict[str, Any]]) -> list[tuple[Any, float]]:
        """One run() over a batch, in a batcher thread: each argument becomes the list of the
        requests' values."""
        value, elapsed_ms = self._call({name: [r[name] for r in requests] for name in requests[0]})
        if not isinstance(value, (list, tuple)) or len(value) != len(requests):
            got = f"{len(value)} answer(s)" if isinstance(value, (list, tuple)) else f"a {type(value).__name__}"
            raise ScriptRunError() from ValueError(f"run() returned {got} for a batch of {len(requests)} requests")
        return [(answer, elapsed_ms) for answer in value]

    def _call(self, kwargs: dict[str, Any]) -> tuple[Any, float]:
        """``run(**kwargs)`` in this thread under the scoring timeout, which raises TimeoutError
        inside run() (so a batch's callers hear of it once run() runs Python code again)."""
        call, expired = _ThreadCall(), threading.Event()

        def interrupt() -> None:
            expired.set()
            call.interrupt()

        timer = threading.Timer(self.timeout_ms / 1000, interrupt)
        with self._slots:
            call.enter()
            timer.start()
            begin = time.perf_counter()
            try:
                value = self._run(**kwargs)
            except BaseException as exc:  # noqa: BLE001 - everything run() raises, the timeout included
                raise (ScriptTimeout(self.timeout_ms) if expired.is_set() else ScriptRunError()) from exc
            finally:
                call.leave()
                timer.cancel()
        return value, (time.perf_counter() - begin) * 1000

    def _response(self, value: Any) -> ScoreResponse:
        """A run() result as azmlinfsrv sends it: an AMLResponse as built, anything else as JSON."""
        if isinstance(value, self._response_module.AMLResponse):
            headers = value.headers
            failed = value.status_code >= 500 or headers.get(FAILED_HEADER) == "True"
            headers[FAILED_HEADER] = str(failed)
            if value.is_streamed:
                return ScoreResponse(value.status_code, headers.items(), _chunks(value.response))
            return ScoreResponse(value.status_code, headers.items(), bytes(value.response))
        body = b"{}" if value is None else encode_json(value)
        return ScoreResponse(200, [("Content-Type", JSON_TYPE), (FAILED_HEADER, "False")], body)

    def swagger(self, version: str | None = None) -> dict[str, Any]:
        """The swagger document of ``version`` (2 when None): the script's own file, else generated."""
        canonical = swagger_version(version, sorted(self._swaggers))
        document = self._swaggers.get(canonical)
        if document is None:
            raise SwaggerNotFound(
                f"Swagger version [{version}] is not supported for the scoring script. "
                f"Supported swagger versions: [{', '.join(sorted(self._swaggers))}]."
            )
        return document


@dataclass(frozen=True)
class _RunSignature:
    """How run() is called, decided once from its signature and decorators (azmlinfsrv's rules)."""

    data_params: list[inspect.Parameter]
    takes_headers: bool
    raw: bool
    schema: bool

    @property
    def kind(self) -> str:
        return "rawhttp" if self.raw else "schema" if self.schema else "string"

    @classmethod
    def of(cls, run: Callable[..., Any], raw: bool, script: Path) -> _RunSignature:
        params = list(inspect.signature(run).parameters.values())
        allowed = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        if any(param.kind not in allowed for param in params):
            raise ScriptInitError(
                f"scoring script {script}: run() cannot accept positional-only arguments, *args, or **kwargs"
            )
        data_params = [param for param in params if param.name != "request_headers"]
        takes_headers = len(data_params) < len(params)
        if not data_params:
            what = 'an argument other than "request_headers"' if takes_headers else "an argument for input data"
            raise ScriptInitError(f"scoring script {script}: run() needs to accept {what}")
        schema = is_schema_decorated(run)
        if raw and schema:
            raise ScriptInitError(
                f"scoring script {script}: run() cannot be decorated with both @rawhttp and @input_schema"
            )
        return cls(data_params, takes_headers, raw, schema)


class _ThreadCall:
    """The thread running one run(): lets the timeout raise TimeoutError in it, only while run() runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: int | None = None

    def enter(self) -> None:
        with self._lock:
            self._thread = threading.get_ident()

    def leave(self) -> None:
        with self._lock:
            self._thread = None

    def interrupt(self) -> None:
        with self._lock:
            if self._thread is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread), ctypes.py_object(TimeoutError))
                self._thread = None


def _notify(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any, error: BaseException | None = None
) -> None:
    """Settle ``future`` from the script thread; a loop closed meanwhile (server gone) is ignored."""

    def settle() -> None:
        if future.done():
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:
        pass


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _chunks(body: Iterable[bytes | str]) -> Iterator[bytes]:
    for chunk in body:
        yield chunk.encode() if isinstance(chunk, str) else chunk


def _message(status: int, message: str, *, failed: bool = False) -> ScoreResponse:
    """azmlinfsrv's ErrorResponse: ``{"message": ...}`` as JSON."""
    body = json.dumps({"message": message}).encode()
    return ScoreResponse(status, [("Content-Type", JSON_TYPE), (FAILED_HEADER, str(failed))], body)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _timeout_ms(explicit: int | None) -> int:
    raw: Any = explicit if explicit is not None else os.environ.get("SCORING_TIMEOUT_MS", DEFAULT_SCORING_TIMEOUT_MS)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = 0
    if value <= 0:
        raise ValidationError(f"SCORING_TIMEOUT_MS: {raw!r} is not a positive number of milliseconds")
    return value


def _concurrency(explicit: int | None, module: ModuleType, script: Path) -> int:
    value = explicit if explicit is not None else getattr(module, "MODELPORT_CONCURRENCY", 1)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ScriptInitError(f"scoring script {script}: MODELPORT_CONCURRENCY must be an integer >= 1, got {value!r}")
    return value


# --- the compat shims ---------------------------------------------------------------------------


def _install_shims() -> tuple[ModuleType, ModuleType]:
    """Make ``azureml.contrib.services.aml_*`` and ``azureml_inference_server_http.api.aml_*`` import
    modelport's shims (azmlinfsrv aliases the legacy names to its own modules the same way)."""
    if str(COMPAT_DIR) not in sys.path:
        sys.path.append(str(COMPAT_DIR))
    modules = []
    for legacy, current in _SHIM_NAMES.values():
        module = importlib.import_module(legacy)
        _alias(current, module)
        modules.append(module)
    return modules[0], modules[1]


def _alias(name: str, module: ModuleType) -> None:
    parent, _, child = name.rpartition(".")
    if parent:
        if parent not in sys.modules:
            package = ModuleType(parent)
            package.__path__ = []
            _alias(parent, package)
        setattr(sys.modules[parent], child, module)
    sys.modules[name] = module


# --- request parsing ------------------------------------------------------------------------------


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _query_object(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Query parameters as a JSON-like object: values parsed as JSON when they can be, repeats → list."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return {
        key: _json_or_text(values[0]) if len(values) == 1 else [_json_or_text(value) for value in values]
        for key, values in grouped.items()
    }


def _json_object_body(request: ScoreRequest) -> dict[str, Any]:
    mimetype = (request.header("content-type") or "").split(";")[0].strip().lower()
    if not (mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
        raise UnsupportedMediaType("Expects Content-Type to be application/json")
    if not request.body:
        raise ValidationError("POST body is empty. Expecting a JSON dictionary.")
    try:
        body = json.loads(request.body)
    except ValueError as exc:
        raise ValidationError(f"POST body could not be decoded as JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValidationError("POST body should be a JSON dictionary.")
    return body


def _schema_arguments(params: list[inspect.Parameter], body: dict[str, Any]) -> dict[str, Any]:
    kwargs = {}
    for param in params:
        value = body.get(param.name, param.default)
        if value is inspect.Parameter.empty:
            raise ValidationError(f"A value is not provided for the {param.name!r} parameter.")
        kwargs[param.name] = value
    return kwargs


def _header_dict(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Headers as Flask hands them to run(): title-cased names, repeated values joined by commas."""
    merged: dict[str, str] = {}
    for name, value in headers:
        key = name.title()
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    return merged


# --- response encoding ----------------------------------------------------------------------------


def encode_json(value: Any) -> bytes:
    """``json.dumps`` of a run() result, but numpy arrays/scalars and pandas objects work too.

    DataFrames become a list of records (the orient inference-schema reads by default).
    """
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    pandas = sys.modules.get("pandas")  # a pandas object implies pandas is imported
    if pandas is not None:
        if isinstance(value, pandas.DataFrame):
            return value.to_dict(orient="records")
        if isinstance(value, (pandas.Series, pandas.Index)):
            return value.tolist()
        if isinstance(value, pandas.Timestamp):
            return value.isoformat()
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")
