"""Model instances in processes of their own, for models whose Python code holds the GIL.

Thread instances run in parallel only while the framework releases the GIL (onnxruntime, torch
and the tree libraries do); a model whose ``predict`` is Python code, such as an MLflow pyfunc,
serialises on it, and every millisecond it holds the GIL is a millisecond the event loop cannot
parse requests. A process instance loads the model in a child process and answers predict calls
over a pipe, so N instances use N cores and the server's own process stays responsive.

The child is started with ``spawn``: the server already runs an event loop and threads, which
``fork`` would copy half-alive. Arrays travel pickled, one copy each way. The child ignores
SIGINT (a terminal's Ctrl-C reaches the whole process group; the server decides when it ends)
and exits when its pipe closes, so a server killed outright does not leave it behind. A child
that dies is reported as the failure of the call it was running and started again at once, in
the background; the instance's next call waits for it.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import signal
import threading
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from modelport.core.errors import ModelportError
from modelport.runtime.config import InstanceGroup, ModelConfig
from modelport.runtime.predictor import Predictor, load_predictor

log = logging.getLogger(__name__)
_SPAWN = multiprocessing.get_context("spawn")
_CLOSE_WAIT_S = 5.0
GIL_BOUND_FLAVORS = frozenset({"mlflow"})  # a pyfunc's predict is arbitrary Python


def runs_in_processes(group: InstanceGroup, flavor: str, total: int) -> bool:
    """Whether the instances of ``group`` run in child processes: as the group says, else when the
    flavor runs Python code per call and there are several instances to run side by side (a lone
    instance saves the pipe hop by staying in the server's process)."""
    if group.process is not None:
        return group.process
    return flavor in GIL_BOUND_FLAVORS and total > 1


class InstanceProcessDied(ModelportError):
    """The instance's process exited while running a request (crash, OOM kill, os._exit)."""

    http_status = 500


class ProcessPredictor(Predictor):
    """A :class:`Predictor` whose model lives in a child process; one call at a time per instance."""

    def __init__(self, flavor: str, model_dir: Path, config: ModelConfig | None, *, device: str = "cpu") -> None:
        self._load_args = (flavor, str(model_dir), config, device)
        self._label = config.name if config is not None and config.name else Path(model_dir).name
        self._process: Any = None
        self._conn: Connection | None = None
        self._restart: threading.Thread | None = None
        self._start()

    def _start(self) -> None:
        parent, child = _SPAWN.Pipe()
        process = _SPAWN.Process(
            target=_serve, args=(child, *self._load_args), name=f"modelport-instance-{self._label}", daemon=True
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        status, payload = self._receive("loading the model")
        if status == "error":
            self._stop()
            raise payload
        self.inputs, self.outputs, self.batch_dim = payload

    def _predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._restart is not None:  # the previous call found the process dead
            self._restart.join()
            self._restart = None
        if self._conn is None:  # and starting it again in the background failed: try once more
            self._start()
        assert self._conn is not None
        try:
            try:
                self._conn.send(dict(inputs))
            except (BrokenPipeError, ConnectionResetError, OSError):
                self._died("running the request")
            status, payload = self._receive("running the request")
        except InstanceProcessDied:
            self._restart = threading.Thread(target=self._start_again, name=f"restart-{self._label}", daemon=True)
            self._restart.start()
            raise
        if status == "error":
            raise payload
        return payload

    def _receive(self, doing: str) -> tuple[str, Any]:
        assert self._conn is not None
        try:
            return self._conn.recv()
        except (EOFError, ConnectionResetError, OSError):
            self._died(doing)

    def _died(self, doing: str) -> NoReturn:
        process = self._process
        process.join(_CLOSE_WAIT_S)
        self._stop()
        raise InstanceProcessDied(
            f"the instance process of {self._label!r} exited with code {process.exitcode} "
            f"while {doing}; it is started again for the next request"
        )

    def _start_again(self) -> None:
        try:
            self._start()
        except Exception:  # noqa: BLE001 - the next call starts it in the open and reports why
            log.warning("instance process of %r could not be started again", self._label, exc_info=True)

    def close(self) -> None:
        """Ask the child to release the model and exit; end it if it does not within a few seconds."""
        if self._restart is not None:
            self._restart.join()
        if self._conn is not None:
            try:
                self._conn.send(None)
            except OSError:
                pass
        self._stop()

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.join(_CLOSE_WAIT_S)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._process = None


def _serve(conn: Connection, flavor: str, model_dir: str, config: ModelConfig | None, device: str) -> None:
    """The child: load the model, report its tensors, then answer one call per message until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        predictor = load_predictor(flavor, Path(model_dir), config, device=device)
    except BaseException as exc:  # noqa: BLE001 - the parent re-raises it as the load failure
        _reply(conn, "error", exc)
        return
    _reply(conn, "ready", (predictor.inputs, predictor.outputs, predictor.batch_dim))
    with predictor:
        while True:
            try:
                inputs = conn.recv()
            except (EOFError, OSError):  # the server is gone
                return
            if inputs is None:
                return
            try:
                _reply(conn, "ok", predictor._predict(inputs))
            except Exception as exc:  # noqa: BLE001 - the model's own failure goes back to its caller
                _reply(conn, "error", exc)


def _reply(conn: Connection, status: str, payload: Any) -> None:
    """Send a result; an exception that cannot be pickled goes back as its type name and message."""
    try:
        conn.send((status, payload))
    except (pickle.PicklingError, TypeError, AttributeError):
        conn.send(("error", RuntimeError(f"{type(payload).__name__}: {payload}")))
