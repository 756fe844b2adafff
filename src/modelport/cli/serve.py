"""``modelport serve``: a scoring server for registered models, a model-repository folder, or an
Azure ML scoring script."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from modelport.cli.context import AppContext, pass_app
from modelport.cli.examples import examples
from modelport.core.errors import ValidationError
from modelport.monitor.request_log import STDOUT, RequestLog

if TYPE_CHECKING:  # the serving stack (numpy, onnxruntime...) is imported when the command runs
    from modelport.monitor.collector import CollectorSettings
    from modelport.registry.sources import ModelSource
    from modelport.serving.server import WorkerSetup


@click.command(
    "serve",
    epilog=examples(
        ("Serve a registered model: v2 HTTP on 8000, gRPC on 8001, metrics on 8002", "modelport serve fraud@prod"),
        (
            "A Triton-style model repository, HTTP only, on port 9000",
            "modelport serve ./model_repository --http-port 9000 --no-grpc",
        ),
        (
            "An unmodified Azure ML score.py with its model folder, and two registered models it calls in process",
            "modelport serve --entry-script score.py --model-dir ./model scaler:1 classifier@prod",
        ),
    ),
)
@click.argument("targets", nargs=-1)
@click.option(
    "--entry-script",
    type=click.Path(path_type=Path),
    default=None,
    help="An Azure ML scoring script (init()/run()) to serve on /score.",
)
@click.option(
    "--model-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The folder the script sees as AZUREML_MODEL_DIR / MODELPORT_MODEL_DIR.",
)
@click.option(
    "--name",
    "served_name",
    default=None,
    help="The model name a TARGET given as a file or model folder is served under [default: its file "
    "stem or folder name].",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--http-port", default=8000, show_default=True, type=int, help="HTTP port (v2 and /score).")
@click.option("--grpc-port", default=8001, show_default=True, type=int, help="gRPC port.")
@click.option("--metrics-port", default=8002, show_default=True, type=int, help="Prometheus metrics port.")
@click.option("--no-grpc", is_flag=True, help="Do not start the gRPC server.")
@click.option(
    "--max-body-mb",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest request body accepted (413 beyond).",
)
@click.option(
    "--model-config",
    metavar="FILE|JSON",
    default=None,
    help="Config fields laid over the model's own (max_batch_size, dynamic_batching, instance_group...): "
    "a YAML file or an inline JSON mapping.",
)
@click.option(
    "--request-log",
    type=click.Path(path_type=Path),
    default=None,
    help="Write one JSON line per scoring request to FILE (rotated by size); '-' is standard output.",
)
@click.option(
    "--request-log-max-mb",
    default=16,
    show_default=True,
    type=click.IntRange(min=1),
    help="Size at which the request log rotates (5 old files are kept).",
)
@click.option(
    "--data-collector",
    metavar="FILE|JSON",
    default=None,
    help="Collect sampled payloads: a data_collector mapping as in deployment.yml.",
)
@click.option(
    "--collect-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where collected payloads go [default: <workspace>/collected/<endpoint>/<deployment>].",
)
@click.option("--endpoint-name", default=None, help="The endpoint this server is a replica of (labels logs).")
@click.option("--deployment-name", default=None, help="The deployment this server is a replica of (labels logs).")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Server processes sharing the ports (statistics and metrics count them all).",
)
@click.option(
    "--share-weights/--no-share-weights",
    default=True,
    show_default=True,
    help="With several workers, ONNX models map one copy of their weights instead of one per worker "
    "(turns off weight prepacking: large batches run slower).",
)
@click.option(
    "--request-timeout-ms",
    default=None,
    type=click.IntRange(min=1),
    help="Per-request time limit on /v2 (503 beyond) [default: none]; scripts use SCORING_TIMEOUT_MS.",
)
@click.option(
    "--max-lag-ms",
    default=200,
    show_default=True,
    type=click.IntRange(min=0),
    help="Answer inference requests 503 at once while the server runs more than this many ms behind "
    "(overload); 0: never.",
)
@click.option(
    "--header-timeout-s",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Close a connection whose request head is not complete this long after it connected (or, "
    "kept alive, after the request's first byte).",
)
@click.option(
    "--body-timeout-s",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Answer 408 and close when a request body stalls this long without a byte.",
)
@click.option(
    "--max-connections",
    default=4096,
    show_default=True,
    type=click.IntRange(min=1),
    help="Open connections per server process at most (fewer when `ulimit -n` minus 64 is lower); "
    "beyond it, the oldest connection still sending its request head is closed, or else the new one "
    "gets 503.",
)
@pass_app
def serve(
    app: AppContext,
    targets: tuple[str, ...],
    entry_script: Path | None,
    model_dir: Path | None,
    served_name: str | None,
    host: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    no_grpc: bool,
    max_body_mb: int,
    model_config: str | None,
    request_log: Path | None,
    request_log_max_mb: int,
    data_collector: str | None,
    collect_dir: Path | None,
    endpoint_name: str | None,
    deployment_name: str | None,
    workers: int,
    share_weights: bool,
    request_timeout_ms: int | None,
    max_lag_ms: int,
    header_timeout_s: float,
    body_timeout_s: float,
    max_connections: int,
) -> None:
    """Serve TARGETS: registered models (NAME, NAME:VERSION, NAME@ALIAS), a folder laid out like a
    Triton model repository (<repo>/<model>/<version>/model.onnx, optional config.pbtxt/config.yaml),
    or a model file or model folder served from its path without registering it (./model.onnx, an
    MLflow model folder), named after it (--name to choose).

    Models speak the Open Inference Protocol v2 over HTTP and gRPC; a scoring script (given with
    --entry-script, or a registered `python`-flavor model) answers Azure ML's /score, and a single
    no-code model (onnx, sklearn...) answers /score too. Models served beside a scoring script are
    the ones its run() can call in process (`from modelport import models`)."""
    from modelport.core.connections import ConnectionLimits
    from modelport.serving.server import ServeOptions, bind_ports, run
    from modelport.serving.targets import resolve_targets
    from modelport.serving.workers import Workers

    if not targets and entry_script is None:
        raise ValidationError(
            "serve: give a TARGET (a registered model or a model-repository folder) or --entry-script"
        )
    if model_dir is not None and entry_script is None:
        raise ValidationError("--model-dir: only used with --entry-script")
    sources = resolve_targets(
        list(targets), lambda: app.workspace, served_name, note=lambda line: click.echo(line, err=True)
    )
    if model_config is not None:
        sources = _with_config(sources, model_config)
    scripts = [source for source in sources if source.entry_script is not None]
    if len(scripts) + (entry_script is not None) > 1:
        raise ValidationError("serve: one scoring script per server (several python-flavor targets or --entry-script)")
    script = (
        (entry_script, model_dir, None)
        if entry_script is not None
        else (scripts[0].entry_script, scripts[0].model_dir, scripts[0].name)
        if scripts
        else None
    )
    models = [source for source in sources if source.entry_script is None]
    if workers > 1:
        models = [_for_workers(source, workers, share_weights) for source in models]
    collecting = (
        _collector(app, data_collector, collect_dir, endpoint_name, deployment_name) if data_collector else None
    )
    options = ServeOptions(
        host=host,
        http_port=http_port,
        grpc_port=None if no_grpc else grpc_port,
        metrics_port=metrics_port,
        max_body=max_body_mb * 1024 * 1024,
        timeout_s=None if request_timeout_ms is None else request_timeout_ms / 1000,
        max_lag_s=max_lag_ms / 1000 if max_lag_ms else None,
        limits=ConnectionLimits(header_timeout_s, body_timeout_s, max_connections),
    )
    names = [source.name for source in models] + ([f"/score ({Path(str(script[0])).name})"] if script else [])

    def announce(where: str) -> None:
        click.echo(f"serving {', '.join(dict.fromkeys(names))} on {where}", err=True)

    def start(index: int, worker: WorkerSetup | None) -> None:
        """One server process: load, then serve until told to stop (every worker runs this)."""
        from modelport.monitor.collector import PayloadCollector, activate
        from modelport.serving.http.azureml import azureml_routes
        from modelport.serving.http.observe import Observing
        from modelport.serving.repository import ModelRepository
        from modelport.serving.scoring_script import ScriptHost

        log_file = request_log if workers == 1 or request_log in (None, STDOUT) else _numbered(request_log, index)
        observing = Observing(
            RequestLog(log_file, request_log_max_mb * 1024 * 1024) if log_file is not None else None,
            PayloadCollector(*collecting) if collecting is not None else None,
            endpoint_name,
            deployment_name,
        )
        activate(observing.collector)  # before the script's init(), which may make its Collectors
        repository = ModelRepository(models)
        try:
            repository.load_all()  # before the script: its init() may call the models
            host_script = ScriptHost(*script, models=repository) if script is not None else None
            no_code = repository if host_script is None and len(repository.names) == 1 else None
            run(
                repository,
                replace(
                    options,
                    extra_routes=azureml_routes(host_script, no_code, None, options.max_body),
                    observing=observing,
                    worker=worker,
                ),
                on_ready=announce if worker is None else None,
            )
        finally:
            repository.close()
            observing.close()

    if workers == 1:
        ports = bind_ports(options)  # a busy port fails here, before loading
        options = replace(options, ports=ports)
        try:
            start(0, None)
        finally:
            ports.close()
        return
    where = f"http://{host}:{http_port}" + (
        "" if metrics_port is None else f", metrics http://{host}:{metrics_port}/metrics"
    )
    code = Workers(workers, options, start).run(on_ready=lambda count: announce(f"{where} ({count})"))
    if code:
        raise SystemExit(code)


def _with_config(sources: list[ModelSource], text: str) -> list[ModelSource]:
    """The one served model with ``--model-config`` laid over its config."""
    from modelport.runtime.config import override_config

    models = [source for source in sources if source.entry_script is None]
    if len(models) != 1:
        raise ValidationError(f"--model-config: applies to exactly one served model, not {len(models)}")
    overrides = _mapping("--model-config", text)
    model = models[0]
    config = override_config(model.config, model.name, overrides, "--model-config")
    return [replace(source, config=config) if source is model else source for source in sources]


def _collector(
    app: AppContext, text: str, folder: Path | None, endpoint: str | None, deployment: str | None
) -> tuple[CollectorSettings, str] | None:
    """The payload collector ``--data-collector`` asks for (its settings and source name); None
    when it enables no collection."""
    from modelport.monitor.collector import CollectorSettings
    from modelport.schema.base import parse
    from modelport.schema.collector import DataCollector

    data = _mapping("--data-collector", text)
    try:
        settings = parse(DataCollector, data).value
    except ValidationError as exc:
        raise ValidationError(f"--data-collector: {exc}") from None
    if not settings.enabled:
        return None
    folder = folder or app.root / "collected" / (endpoint or "local") / (deployment or "serve")
    source = f"/endpoints/{endpoint}/deployments/{deployment}" if endpoint else f"file://{folder}"
    return CollectorSettings(
        folder, frozenset(settings.enabled), settings.sampling_rate, settings.rolling_rate, settings.format
    ), source


def _for_workers(source: ModelSource, workers: int, share_weights: bool) -> ModelSource:
    """An ONNX model served by several workers maps one shared copy of its weights, and its
    instances split the cores among all workers' instances (unless its config sets threads)."""
    from modelport.runtime.config import override_config
    from modelport.runtime.flavors import default_threads, thread_count

    if source.flavor != "onnx":
        return source
    parameters = {"share_weights": "true"} if share_weights else {}
    if thread_count(source.config, "cpu") is None:
        parameters["intra_op_thread_count"] = str(default_threads(source.config, "cpu", workers))
    if not parameters:
        return source
    return replace(source, config=override_config(source.config, source.name, {"parameters": parameters}))


def _numbered(path: Path, index: int) -> Path:
    """Worker ``index``'s own request log: ``requests.jsonl`` → ``requests.w1.jsonl``."""
    return path.with_name(f"{path.stem}.w{index}{path.suffix}")


def _mapping(option: str, text: str) -> dict:
    """An option that takes a YAML file or an inline JSON mapping."""
    path = Path(text)
    if not (text.lstrip().startswith("{") or path.is_file()):
        raise ValidationError(f"{option}: {text} is neither a file nor a JSON mapping")
    import yaml  # loaded by the options that take a file, not by every command's --help

    try:
        value = yaml.safe_load(text if text.lstrip().startswith("{") else path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValidationError(f"{option}: not valid YAML/JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(value, dict):
        raise ValidationError(f"{option}: expected a mapping")
    return value
