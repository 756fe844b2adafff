"""``modelport profile``: measure a model (or a deployment) behind the real server and recommend its
CPU, memory, instances and batching settings, as Azure ML's ``Model.profile`` does; ``--apply``
writes the recommendation into the deployment's ``model_config``."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from modelport.cli.context import AppContext, pass_app
from modelport.cli.examples import examples
from modelport.cli.output import console, output_option, print_fields, print_json
from modelport.core import durations
from modelport.core.errors import ModelportError, ValidationError

if TYPE_CHECKING:
    from modelport.control.client import DaemonClient
    from modelport.profiling.sample import Sample
    from modelport.profiling.sweep import SweepOptions
    from modelport.profiling.targets import Target


def parse_duration(text: str, option: str = "--duration") -> float:
    """``10s``, ``500ms``, ``1m``, ``1.5`` (seconds) → seconds; more than zero."""
    return durations.parse_duration(text, option, "10s, 500ms, 1m or 2.5")


def parse_ints(text: str, option: str, minimum: int = 1) -> tuple[int, ...]:
    """``1,2,4`` → ``(1, 2, 4)``, each at least ``minimum``, sorted, without repeats."""
    values = []
    for item in text.replace(" ", "").split(","):
        if not item.isdigit() or int(item) < minimum:
            raise ValidationError(f"{option}: {item!r} is not an integer ≥ {minimum} (give a list like 1,2,4)")
        values.append(int(item))
    return tuple(sorted(set(values)))


@click.command(
    "profile",
    epilog=examples(
        (
            "Batching and resources for fraud@prod within a 50 ms p99",
            "modelport profile fraud@prod --input request.json --latency-budget-ms 50",
        ),
        (
            "Profile the deployment blue and roll out what it recommends",
            "modelport profile iris/blue --input request.json --apply",
        ),
        (
            "A quicker sweep, saved as JSON",
            "modelport profile fraud:3 --input request.json --concurrency 4,16 "
            "--duration 5s -o json --save profile.json",
        ),
    ),
)
@click.argument("target")
@click.option(
    "--input",
    "-i",
    "input_file",
    required=True,
    type=click.Path(path_type=Path),
    help="A request body: a v2 inference request (JSON with inputs) or a /score body.",
)
@click.option(
    "--concurrency",
    default="1,2,4,8,16,32",
    show_default=True,
    metavar="N,N,...",
    help="Requests in flight (closed loop) to measure the model's own settings at.",
)
@click.option("--duration", default="10s", show_default=True, help="Measured time per trial (10s, 500ms, 1m).")
@click.option(
    "--latency-budget-ms",
    default=100.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="The p99 latency a recommendation must stay within.",
)
@click.option(
    "--max-batch-sizes",
    default="1,8,32",
    show_default=True,
    metavar="N,N,...",
    help="max_batch_size values of the batching grid.",
)
@click.option(
    "--queue-delays-us",
    default="0,1000",
    show_default=True,
    metavar="N,N,...",
    help="dynamic_batching.max_queue_delay_microseconds values of the grid.",
)
@click.option(
    "--instance-counts", default="1,2", show_default=True, metavar="N,N,...", help="instance_group counts of the grid."
)
@click.option(
    "--tolerance",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0, 0.5),
    help="Cheaper settings within this fraction of the best throughput are preferred.",
)
@click.option("--no-verify", is_flag=True, help="Do not serve the recommendation afresh to confirm it.")
@click.option(
    "--save",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write the JSON document to this file [default: not written].",
)
@click.option(
    "--apply",
    "apply_",
    is_flag=True,
    help="Write the recommendation into the deployment's model_config (ENDPOINT/DEPLOYMENT only; rolls it).",
)
@click.option(
    "--url",
    default=None,
    metavar="URL",
    help="Daemon URL for ENDPOINT/DEPLOYMENT [default: $MODELPORT_URL, else the workspace's running daemon].",
)
@output_option
@pass_app
def profile(
    app: AppContext,
    target: str,
    input_file: Path,
    concurrency: str,
    duration: str,
    latency_budget_ms: float,
    max_batch_sizes: str,
    queue_delays_us: str,
    instance_counts: str,
    tolerance: float,
    no_verify: bool,
    save: Path | None,
    apply_: bool,
    url: str | None,
    output: str,
) -> None:
    """Profile TARGET and recommend cpu, memory, instances and batching that meet the latency budget
    at the highest throughput.

    TARGET is a registered model (NAME, NAME:V, NAME@ALIAS), a model-repository folder, or
    ENDPOINT/DEPLOYMENT of the running daemon. Each trial is a real `modelport serve` on loopback
    ports; a scoring script only has its concurrency measured."""
    from modelport.profiling.recommend import ChoiceState
    from modelport.profiling.sample import Sample
    from modelport.profiling.sweep import SweepOptions

    options = SweepOptions(
        concurrency=parse_ints(concurrency, "--concurrency"),
        duration=parse_duration(duration),
        budget_ms=latency_budget_ms,
        max_batch_sizes=parse_ints(max_batch_sizes, "--max-batch-sizes"),
        queue_delays_us=parse_ints(queue_delays_us, "--queue-delays-us", minimum=0),
        instance_counts=parse_ints(instance_counts, "--instance-counts"),
        tolerance=tolerance,
        verify=not no_verify,
    )
    sample = Sample.read(input_file)
    client, resolved = _target(app, target, url, apply_)
    try:
        document = _profile(resolved, sample, options)
        if apply_ and client is not None and document["state"] == ChoiceState.SUCCEEDED:
            document["applied"] = _apply(client, resolved, document)
    finally:
        if client is not None:
            client.close()
    if save is not None:
        try:
            save.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"--save: cannot write {save} ({exc.strerror})") from None
    _render(document, output)
    if apply_ and "applied" not in document:
        raise ModelportError(
            f"--apply: no trial met the {latency_budget_ms:g} ms p99 budget; {target} was left as it is"
        )


def _profile(target: Target, sample: Sample, options: SweepOptions) -> dict[str, Any]:
    """Run the sweep and shape its document. Trial server logs go to a temporary folder that is
    kept (and named in ``errorLogsUri``) only when a request failed or a server did not start."""
    from modelport.profiling.recommend import profile_document
    from modelport.profiling.sweep import Sweep
    from modelport.profiling.trials import machine_resources

    logs = Path(tempfile.mkdtemp(prefix="modelport-profile-"))
    try:
        result = Sweep(target, sample, options, logs, say=lambda line: click.echo(line, err=True)).run()
    except ValidationError:  # the user's input: the logs say nothing more
        shutil.rmtree(logs, ignore_errors=True)
        raise
    check = result.verify
    verifying = [check.verified, check.best_again] if check else []
    failed = bool(result.warnings) or any(trial.errors for trial in [*result.trials, *verifying])
    if not failed:
        shutil.rmtree(logs, ignore_errors=True)
    cpus, memory = machine_resources()
    return profile_document(
        target.name,
        result.trials,
        result.choice,
        budget_ms=options.budget_ms,
        base=target.base,
        requested_cpu=cpus,
        requested_memory_gb=memory,
        logs=str(logs) if failed else None,
        verified=check.verified if check else None,
        best_again=check.best_again if check else None,
        warnings=result.warnings,
    )


def _target(app: AppContext, text: str, url: str | None, apply_: bool) -> tuple[DaemonClient | None, Target]:
    """The resolved target, and a daemon client for a deployment target (else None)."""
    from modelport.profiling.targets import deployment_target, is_deployment_ref, model_target

    if not is_deployment_ref(text):
        if apply_:
            raise ValidationError(
                "--apply: only with an ENDPOINT/DEPLOYMENT target (a model has no deployment to update)"
            )
        return None, model_target(text, lambda: app.workspace)
    from modelport.control.client import DaemonClient

    client = DaemonClient(url, workspace=app.root)
    try:
        target = deployment_target(text, app.workspace, client)
        if apply_ and target.scripted:
            raise ValidationError(f"--apply: {text} runs a scoring script; it has no model_config to tune")
    except BaseException:
        client.close()
        raise
    return client, target


def _apply(client: DaemonClient, target: Target, document: dict[str, Any]) -> dict[str, Any]:
    """PUT the deployment with ``model_config`` = its own with the recommendation laid over it
    (the request ``deployment update --set model_config=...`` sends); the daemon rolls it."""
    from modelport.profiling.targets import merged

    assert target.deployment is not None
    endpoint, name = target.deployment
    model_config = merged(target.model_config, document["modelConfig"])
    body = {"definition": None, "set": [f"model_config={json.dumps(model_config)}"], "base_dir": str(Path.cwd())}
    result = client.call("PUT", f"endpoints/{endpoint}/deployments/{name}", body)
    click.echo(
        f"applied to deployment {endpoint}/{name}: revision {result['revision']}, "
        f"model_config {json.dumps(model_config)}",
        err=True,
    )
    return {"deployment": f"{endpoint}/{name}", "revision": result["revision"], "model_config": model_config}


def _render(document: dict[str, Any], output: str) -> None:
    if output == "json":
        print_json(document)
        return
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"profile of {document['name']}: latency ms, delay µs (p99 budget {document['latencyBudgetInMs']:g} ms)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in ("#", "phase", "batch", "delay", "inst", "conc", "req/s", "p50", "p99", "cpu", "MB", "err"):
        table.add_column(column, justify="left" if column in ("#", "phase") else "right")
    for t in document["trials"]:
        mark = "★" if t["index"] == document["recommendedTrial"] else ""
        memory = t["peakMemoryInMB"]
        table.add_row(
            f"{mark}{t['index']}",
            t["phase"],
            _cell(t["maxBatchSize"]),
            _cell(t["maxQueueDelayMicroseconds"]),
            _cell(t["instanceCount"]),
            str(t["concurrency"]),
            f"{t['queriesPerSecond']:,.0f}",
            _ms(t["latencyPercentile50InMs"]),
            _ms(t["latencyPercentile99InMs"]),
            "-" if t["cpu"] is None else f"{t['cpu']:.2f}",
            "-" if memory is None else f"{memory:.0f}",
            str(t["totalQueries"] - t["successQueries"]),
        )
    console().print(table)
    keys = (
        "state",
        "recommendedCpu",
        "recommendedMemoryInGB",
        "modelConfig",
        "measuredConcurrency",
        "measuredQueriesPerSecond",
        "latencyPercentile99InMs",
        "bestQueriesPerSecondWithinBudget",
        "verifiedQueriesPerSecond",
        "verifiedBestQueriesPerSecond",
        "verifiedRatio",
        "errorLogsUri",
        "applied",
    )
    fields = {
        key: json.dumps(document[key]) if isinstance(document.get(key), dict) else document[key]
        for key in keys
        if document.get(key) is not None
    }
    print_fields(fields, title="recommendation")
    for warning in document["warnings"]:
        click.echo(f"warning: {warning}", err=True)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
