"""``modelport batch-endpoint``, ``batch-deployment`` and ``job``: batch scoring from the shell.

Flags follow ``az ml batch-endpoint`` / ``batch-deployment``: ``-f FILE``, ``--set key=value``,
``--name/-n``, ``--endpoint-name/-e``; ``invoke`` prints the job id and, with ``--wait``,
follows it to the end and exits 1 unless it Completed. These commands work on the workspace
directly; ``get-credentials`` gives the keys with which clients start jobs over HTTP through the
daemon (``POST <scoring_uri>``, see ``modelport.control.batch_router``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from modelport.batch.status import JobStatus
from modelport.cli.context import AppContext, pass_app
from modelport.cli.examples import examples
from modelport.cli.output import (
    confirm_delete,
    note_ignored,
    output_option,
    parse_pairs,
    print_fields,
    print_json,
    print_table,
    yes_option,
)
from modelport.control.rundir import read_info
from modelport.core.errors import ModelportError, ValidationError
from modelport.core.keys import KEY_NAMES
from modelport.core.overrides import read_definition
from modelport.schema.choices import Engine

if TYPE_CHECKING:  # imported on use (below): SQLAlchemy stays out of --help and the other commands
    from modelport.batch.endpoints import BatchEndpoints, DeploymentInfo, EndpointInfo
    from modelport.batch.jobs import BatchJobs, JobInfo

_file_option = click.option(
    "--file", "-f", "file", type=click.Path(path_type=Path), default=None, help="Azure ML CLI v2 YAML definition."
)


def _set_option(example: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--set``, whose help shows a field of the command's own definition."""
    return click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help=f"Set a YAML value, e.g. --set {example} (repeatable).",
    )


_endpoint_set_option = _set_option("defaults.deployment_name=nocode, or --set description='nightly scoring'")
_deployment_set_option = _set_option("settings.mini_batch_size=5")


@click.group(
    "batch-endpoint",
    epilog=examples(
        (
            "A batch endpoint with a default deployment, then a job on a CSV file",
            "modelport batch-endpoint create -f batch-endpoint.yml\n"
            "modelport batch-deployment create -f batch-deployment.yml --set-default\n"
            "modelport batch-endpoint invoke -n iris-batch --input flowers.csv --output-path out --wait",
        ),
    ),
)
def batch_endpoint() -> None:
    """Batch endpoints: a stable name whose deployments score files and tables in jobs."""


@click.group(
    "batch-deployment",
    epilog=examples(
        (
            "A deployment that becomes the endpoint's default",
            "modelport batch-deployment create -f batch-deployment.yml --set-default",
        ),
        ("What the endpoint's deployments run with", "modelport batch-deployment list -e iris-batch"),
    ),
)
def batch_deployment() -> None:
    """Batch deployments: model + scoring script + settings under a batch endpoint."""


@click.group(
    "job",
    epilog=examples(
        ("The endpoint's jobs, newest first", "modelport job list -e iris-batch"),
        ("Progress and failed inputs of one", "modelport job show batchjob-42e53a0f4bb64846"),
    ),
)
def job() -> None:
    """Batch jobs: progress, logs, cancel and resume."""


# -- endpoints ---------------------------------------------------------------------------------


def _show_endpoint(app: AppContext, info: EndpointInfo, output: str, ignored: tuple[str, ...] = ()) -> None:
    data = info.to_dict()
    data["scoring_uri"] = _scoring_uri(app, info.name)
    if ignored:
        data["ignored"] = list(ignored)
    if output == "json":
        print_json(data)
    else:
        note_ignored(ignored)
        print_fields(data, title=f"batch endpoint {info.name}")


def _scoring_uri(app: AppContext, name: str) -> str | None:
    """Where clients start the endpoint's jobs: on the workspace's daemon, when one runs."""
    daemon = read_info(app.workspace.root)
    return f"{daemon.url}/batch-endpoints/{name}/jobs" if daemon is not None else None


@batch_endpoint.command(
    "create",
    epilog=examples(
        ("Create a batch endpoint from its YAML file", "modelport batch-endpoint create -f batch-endpoint.yml"),
        ("One without a file", "modelport batch-endpoint create -n mnist --set description='digits, nightly'"),
    ),
)
@_file_option
@click.option("--name", "-n", default=None, help="Endpoint name [default: from the file].")
@_endpoint_set_option
@output_option
@pass_app
def endpoint_create(app: AppContext, file: Path | None, name: str | None, sets: tuple[str, ...], output: str) -> None:
    """Create a batch endpoint."""
    data, _ = read_definition(file, sets, name)
    from modelport.batch.definitions import parse_endpoint

    parsed = parse_endpoint(data)
    _show_endpoint(app, _endpoints(app).create_endpoint(parsed.value), output, parsed.ignored)


@batch_endpoint.command(
    "update",
    epilog=examples(
        (
            "Make nocode the deployment that jobs use by default",
            "modelport batch-endpoint update -n iris-batch --set defaults.deployment_name=nocode",
        ),
        ("Apply an edited file (the name comes from it)", "modelport batch-endpoint update -f batch-endpoint.yml"),
    ),
)
@click.option("--name", "-n", default=None, help="Endpoint name [default: from the file].")
@_file_option
@_endpoint_set_option
@output_option
@pass_app
def endpoint_update(app: AppContext, name: str | None, file: Path | None, sets: tuple[str, ...], output: str) -> None:
    """Change description, tags or defaults.deployment_name."""
    data, _ = read_definition(file, sets, name)
    name = data.get("name")
    if not name:
        raise ValidationError("name: required (in the file or with -n)")
    _show_endpoint(app, _endpoints(app).update_endpoint(name, data), output)


@batch_endpoint.command(
    "show",
    epilog=examples(
        ("Deployments and default of iris-batch", "modelport batch-endpoint show -n iris-batch"),
    ),
)
@click.option("--name", "-n", required=True, help="Endpoint name.")
@output_option
@pass_app
def endpoint_show(app: AppContext, name: str, output: str) -> None:
    """Show one batch endpoint; scoring_uri is where clients start its jobs (with `modelport up`)."""
    _show_endpoint(app, _endpoints(app).get_endpoint(name), output)


@batch_endpoint.command(
    "list",
    epilog=examples(
        ("Every batch endpoint, as JSON", "modelport batch-endpoint list -o json"),
    ),
)
@output_option
@pass_app
def endpoint_list(app: AppContext, output: str) -> None:
    """List batch endpoints."""
    infos = _endpoints(app).list_endpoints()
    if output == "json":
        print_json([info.to_dict() for info in infos])
        return
    print_table(
        ["name", "default deployment", "deployments", "description"],
        ((i.name, i.default_deployment, ", ".join(i.deployments), i.description) for i in infos),
    )


@batch_endpoint.command(
    "get-credentials",
    epilog=examples(
        ("The keys that start jobs of iris-batch over HTTP", "modelport batch-endpoint get-credentials -n iris-batch"),
    ),
)
@click.option("--name", "-n", required=True, help="Endpoint name.")
@output_option
@pass_app
def endpoint_get_credentials(app: AppContext, name: str, output: str) -> None:
    """Show the endpoint's two keys: POST <scoring_uri> with Authorization: Bearer <key> starts a job."""
    primary, secondary = _endpoints(app).keys(name)
    data = {"primaryKey": primary, "secondaryKey": secondary}
    if output == "json":
        print_json(data)
    else:
        print_fields(data, title=f"batch endpoint {name} keys")


@batch_endpoint.command(
    "regenerate-keys",
    epilog=examples(
        (
            "Replace the primary key of iris-batch",
            "modelport batch-endpoint regenerate-keys -n iris-batch --key primary",
        ),
    ),
)
@click.option("--name", "-n", required=True, help="Endpoint name.")
@click.option("--key", "--key-type", "key", required=True, type=click.Choice(KEY_NAMES), help="Which key to replace.")
@pass_app
def endpoint_regenerate_keys(app: AppContext, name: str, key: str) -> None:
    """Replace one key; the old one stops working at once, the other keeps working."""
    _endpoints(app).regenerate_key(name, key)
    click.echo(f"regenerated the {key} key of batch endpoint {name} (see modelport batch-endpoint get-credentials)")


@batch_endpoint.command(
    "delete",
    epilog=examples(
        (
            "Delete iris-batch and its deployments (its jobs stay listed)",
            "modelport batch-endpoint delete -n iris-batch --yes",
        ),
    ),
)
@click.option("--name", "-n", required=True, help="Endpoint name.")
@yes_option
@pass_app
def endpoint_delete(app: AppContext, name: str, yes: bool) -> None:
    """Delete a batch endpoint and its deployments (job history stays; asks first unless --yes)."""
    confirm_delete(f"batch endpoint {name} and its deployments", yes)
    _endpoints(app).delete_endpoint(name)
    click.echo(f"deleted batch endpoint {name}")


@batch_endpoint.command(
    "invoke",
    epilog=examples(
        (
            "Score a CSV file with the default deployment and wait for the result",
            "modelport batch-endpoint invoke -n iris-batch --input flowers.csv --output-path out --wait",
        ),
        (
            "Score a folder of images with the deployment 'scripted', 8 workers",
            "modelport batch-endpoint invoke -n mnist -d scripted --input ./images --set max_concurrency_per_instance=8",
        ),
        (
            "Score Parquet files matching a glob on a Ray cluster",
            "modelport batch-endpoint invoke -n iris-batch --input 'data/*.parquet' --input-type tabular "
            "--engine ray --ray-address 10.0.0.5:6379",
        ),
    ),
)
@click.option("--name", "-n", required=True, help="Endpoint name.")
@click.option(
    "--deployment",
    "--deployment-name",
    "-d",
    default=None,
    help="Deployment [default: the endpoint's defaults.deployment_name].",
)
@click.option("--input", "-i", "input_uri", required=True, help="Folder, file, glob or fsspec URL.")
@click.option(
    "--input-type",
    type=click.Choice(["uri_folder", "uri_file", "tabular"]),
    default=None,
    help="How to cut the input [default: uri_folder/uri_file; tabular for no-code deployments].",
)
@click.option(
    "--output-path",
    "output_path",
    default=None,
    metavar="DIR",
    help="Folder for the output file [default: the job's outputs/ folder].",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="SETTING=VALUE",
    help="Override a deployment setting for this job, e.g. mini_batch_size=5 (repeatable).",
)
@click.option(
    "--engine",
    type=click.Choice([engine.value for engine in Engine]),
    default="local",
    show_default=True,
    help="Where workers run: local processes, or actors on a Ray cluster.",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="HOST:PORT",
    help="With --engine ray: the cluster's head [default: $RAY_ADDRESS].",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("--wait", is_flag=True, help="Follow the job to its end; exit 1 unless it Completed.")
@output_option
@pass_app
def endpoint_invoke(
    app: AppContext,
    name: str,
    deployment: str | None,
    input_uri: str,
    input_type: str | None,
    output_path: str | None,
    sets: tuple[str, ...],
    engine: str,
    ray_address: str | None,
    overwrite: bool,
    wait: bool,
    output: str,
) -> None:
    """Start a batch scoring job; --set mini_batch_size=N instance_count=N max_concurrency_per_instance=N
    max_retries=N timeout=S error_threshold=N output_file_name=F override the deployment."""
    jobs = _jobs(app)
    info = jobs.submit(
        name,
        input_uri,
        deployment=deployment,
        input_type=input_type,
        output_path=output_path,
        overrides=parse_pairs(sets, "--set"),
        engine=engine,
        ray_address=ray_address,
        overwrite=overwrite,
    )
    _finish(jobs, info, wait, output)


# -- deployments -------------------------------------------------------------------------------


def _show_deployment(info: DeploymentInfo, output: str) -> None:
    if output == "json":
        print_json(info.to_dict())
        return
    note_ignored(info.ignored)
    data = info.to_dict()
    data.pop("ignored", None)
    print_fields(data, title=f"batch deployment {info.endpoint_name}/{info.name}")


@batch_deployment.command(
    "create",
    epilog=examples(
        (
            "Create a deployment and make it the endpoint's default",
            "modelport batch-deployment create -f batch-deployment.yml --set-default",
        ),
        (
            "The same file as another deployment, with smaller mini-batches",
            "modelport batch-deployment create -f batch-deployment.yml -n small --set settings.mini_batch_size=2",
        ),
    ),
)
@_file_option
@click.option("--name", "-n", default=None, help="Deployment name [default: from the file].")
@click.option("--endpoint-name", "-e", default=None, help="Endpoint [default: from the file].")
@_deployment_set_option
@click.option("--set-default", is_flag=True, help="Make it the endpoint's default deployment.")
@output_option
@pass_app
def deployment_create(
    app: AppContext,
    file: Path | None,
    name: str | None,
    endpoint_name: str | None,
    sets: tuple[str, ...],
    set_default: bool,
    output: str,
) -> None:
    """Create a batch deployment (inline model and environment are registered first)."""
    data, base = read_definition(file, sets, name)
    if endpoint_name is not None:
        data["endpoint_name"] = endpoint_name
    from modelport.batch.definitions import parse_deployment

    parsed = parse_deployment(data, base)
    created = _endpoints(app).create_deployment(parsed.value, ignored=parsed.ignored, set_default=set_default)
    _show_deployment(created, output)


@batch_deployment.command(
    "show",
    epilog=examples(
        ("Model, script and settings of nocode", "modelport batch-deployment show -e iris-batch -n nocode"),
    ),
)
@click.option("--name", "-n", required=True, help="Deployment name.")
@click.option("--endpoint-name", "-e", required=True, help="Endpoint name.")
@output_option
@pass_app
def deployment_show(app: AppContext, name: str, endpoint_name: str, output: str) -> None:
    """Show one batch deployment."""
    _show_deployment(_endpoints(app).get_deployment(endpoint_name, name), output)


@batch_deployment.command(
    "list",
    epilog=examples(
        ("The deployments of iris-batch", "modelport batch-deployment list -e iris-batch"),
    ),
)
@click.option("--endpoint-name", "-e", required=True, help="Endpoint name.")
@output_option
@pass_app
def deployment_list(app: AppContext, endpoint_name: str, output: str) -> None:
    """List the deployments of a batch endpoint."""
    infos = _endpoints(app).list_deployments(endpoint_name)
    if output == "json":
        print_json([info.to_dict() for info in infos])
        return
    from modelport.schema.job import DeploymentSpec

    rows = []
    for info in infos:
        spec = DeploymentSpec.read(info.spec)
        settings = info.settings
        rows.append(
            (
                info.name,
                info.is_default,
                spec.model,
                spec.scoring_script or "(no-code)",
                settings.mini_batch_size,
                settings.workers,
            )
        )
    print_table(["name", "default", "model", "scoring script", "mini-batch", "workers"], rows)


@batch_deployment.command(
    "delete",
    epilog=examples(
        (
            "Delete the deployment small (not the default)",
            "modelport batch-deployment delete -e iris-batch -n small --yes",
        ),
    ),
)
@click.option("--name", "-n", required=True, help="Deployment name.")
@click.option("--endpoint-name", "-e", required=True, help="Endpoint name.")
@yes_option
@pass_app
def deployment_delete(app: AppContext, name: str, endpoint_name: str, yes: bool) -> None:
    """Delete a batch deployment (not the endpoint's default; asks first unless --yes)."""
    confirm_delete(f"batch deployment {endpoint_name}/{name}", yes)
    _endpoints(app).delete_deployment(endpoint_name, name)
    click.echo(f"deleted batch deployment {endpoint_name}/{name}")


# -- jobs --------------------------------------------------------------------------------------


@job.command(
    "show",
    epilog=examples(
        ("Progress, items/s, ETA and failed inputs", "modelport job show batchjob-42e53a0f4bb64846"),
        ("As JSON, for scripts", "modelport job show batchjob-42e53a0f4bb64846 -o json"),
    ),
)
@click.argument("job_id")
@output_option
@pass_app
def job_show(app: AppContext, job_id: str, output: str) -> None:
    """Status, progress (mini-batches, items, items/s, ETA) and errors of one job."""
    info = _jobs(app).get(job_id)
    if output == "json":
        print_json(info.to_dict())
        return
    print_fields(
        _summary(info) | {"errors": [f"{', '.join(e['items'])}: {e['error']}" for e in info.errors]},
        title=f"job {info.id}",
    )


@job.command(
    "list",
    epilog=examples(
        ("Every job, newest first", "modelport job list"),
        ("The jobs of one endpoint, as JSON", "modelport job list -e iris-batch -o json"),
    ),
)
@click.option("--endpoint-name", "-e", default=None, help="Only this endpoint's jobs.")
@output_option
@pass_app
def job_list(app: AppContext, endpoint_name: str | None, output: str) -> None:
    """List batch jobs, newest first."""
    infos = _jobs(app).list(endpoint_name)
    if output == "json":
        print_json([info.to_dict() for info in infos])
        return
    print_table(
        ["id", "status", "endpoint", "deployment", "mini-batches", "failed items", "created"],
        (
            (
                i.id,
                i.status,
                i.endpoint,
                i.deployment,
                _minibatches(i),
                i.items["failed"],
                f"{i.created_at:%Y-%m-%d %H:%M:%S}",
            )
            for i in infos
        ),
        whole=["id"],
    )


@job.command(
    "logs",
    epilog=examples(
        ("Why did mini-batches fail?", "modelport job logs batchjob-42e53a0f4bb64846 | less"),
    ),
)
@click.argument("job_id")
@pass_app
def job_logs(app: AppContext, job_id: str) -> None:
    """Print the job's logs: runner, result, errors, then each worker's output."""
    for path in _jobs(app).log_files(job_id):
        click.echo(f"==> {path} <==")
        click.echo(path.read_text(encoding="utf-8", errors="replace"), nl=False)


@job.command(
    "stream",
    epilog=examples(
        ("Follow a job started without --wait", "modelport job stream batchjob-42e53a0f4bb64846"),
    ),
)
@click.argument("job_id")
@output_option
@pass_app
def job_stream(app: AppContext, job_id: str, output: str) -> None:
    """Follow a job's progress to its end; exit 1 unless it Completed."""
    jobs = _jobs(app)
    _finish(jobs, jobs.get(job_id), True, output)


@job.command(
    "cancel",
    epilog=examples(
        ("Stop a job", "modelport job cancel batchjob-42e53a0f4bb64846"),
    ),
)
@click.argument("job_id")
@output_option
@pass_app
def job_cancel(app: AppContext, job_id: str, output: str) -> None:
    """Stop a job (its runner kills the workers; nothing is assembled)."""
    info = _jobs(app).cancel(job_id)
    _print_status(info, output)


@job.command(
    "resume",
    epilog=examples(
        (
            "After a crash: score what is left and wait for the end",
            "modelport job resume batchjob-42e53a0f4bb64846 --wait",
        ),
    ),
)
@click.argument("job_id")
@click.option("--wait", is_flag=True, help="Follow the job to its end; exit 1 unless it Completed.")
@output_option
@pass_app
def job_resume(app: AppContext, job_id: str, wait: bool, output: str) -> None:
    """Restart a job whose runner died; only mini-batches not done are scored."""
    jobs = _jobs(app)
    _finish(jobs, jobs.resume(job_id), wait, output)


# -- progress ----------------------------------------------------------------------------------


def _finish(jobs: BatchJobs, info: JobInfo, wait: bool, output: str) -> None:
    if wait:
        info = _follow(jobs, info)
    _print_status(info, output)
    if wait and info.status != JobStatus.COMPLETED:
        raise ModelportError(f"job {info.id} {info.status}: {info.error or 'see modelport job logs ' + info.id}")


def _print_status(info: JobInfo, output: str) -> None:
    if output == "json":
        print_json({"id": info.id, "status": info.status})
    else:
        click.echo(f"{info.id} {info.status}")


def _follow(jobs: BatchJobs, info: JobInfo) -> JobInfo:
    """Poll the job until it ends, with a progress bar on a terminal and a line every few
    seconds otherwise."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        last = 0.0
        for pause in _pauses():
            if info.terminal or info.status == JobStatus.NOT_RESPONDING:
                break
            if time.monotonic() - last >= 5:
                click.echo(_progress_line(info), err=True)
                last = time.monotonic()
            jobs.pause(pause)
            info = jobs.get(info.id)
        return info
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        console=console,
        transient=True,
    ) as progress:
        bar = progress.add_task(info.id, total=info.minibatches["total"], detail="")
        for pause in _pauses():
            if info.terminal or info.status == JobStatus.NOT_RESPONDING:
                break
            finished = info.minibatches["done"] + info.minibatches["failed"]
            progress.update(bar, completed=finished, description=f"{info.id} {info.status}", detail=_rate_text(info))
            jobs.pause(pause)
            info = jobs.get(info.id)
    return info


def _pauses() -> Iterator[float]:
    """Seconds between polls: short at first, so a job of a few seconds is not kept waiting
    up to half a second after it ended, then every half second, so polling a long job (each
    poll reads every mini-batch's row) stays cheap."""
    pause = 0.05
    while True:
        yield pause
        pause = min(0.5, pause * 1.25)


def _progress_line(info: JobInfo) -> str:
    return f"{info.id} {info.status}: mini-batches {_minibatches(info)}; {_rate_text(info)}"


def _rate_text(info: JobInfo) -> str:
    items = info.items
    text = f"items {items['succeeded'] + items['failed']}/{items['total']} ({items['failed']} failed)"
    if info.items_per_second:
        text += f", {info.items_per_second:,.1f} items/s"
    if info.eta_seconds is not None:
        text += f", ETA {info.eta_seconds:,.0f} s"
    return text


def _minibatches(info: JobInfo) -> str:
    counts = info.minibatches
    return f"{counts['done']} done, {counts['failed']} failed, {counts['total']} total"


def _summary(info: JobInfo) -> dict[str, object]:
    return {
        "status": info.status,
        "endpoint": info.endpoint,
        "deployment": info.deployment,
        "engine": f"ray at {info.ray_address}" if info.ray_address else info.engine,
        "input": f"{info.input['uri']} ({info.input['type']}, {info.input['items']} items)",
        "output": info.output_file or "(summary_only)",
        "mini-batches": _minibatches(info),
        "items": _rate_text(info),
        "error": info.error,
        "created": info.created_at,
        "started": info.started_at,
        "finished": info.finished_at,
        "job folder": info.job_dir,
    }


def _endpoints(app: AppContext) -> BatchEndpoints:
    """The workspace's batch endpoints, imported on use: ``--help`` and other commands skip SQLAlchemy."""
    from modelport.batch.endpoints import BatchEndpoints

    return BatchEndpoints(app.workspace)


def _jobs(app: AppContext) -> BatchJobs:
    """The workspace's batch jobs, imported on use like :func:`_endpoints`."""
    from modelport.batch.jobs import BatchJobs

    return BatchJobs(app.workspace, fork_runner=True)
