"""``modelport monitor drift``: does a target table (or a deployment's collected payload) still
look like the baseline the model was trained on?

    modelport monitor drift --baseline train.parquet --target fraud/blue --since 24h --html drift.html

Per column the deciding metric (numeric: normalized Wasserstein distance, categorical:
Jensen-Shannon distance) is compared with its threshold (``--threshold numerical=0.1
--threshold categorical=0.1``, Azure ML's defaults); PSI and the KS / chi-squared p-values are
shown alongside. The verdict is drift when any column is over its threshold. The rules and the
``--output json`` document are described in ``modelport.monitor.drift``; the inputs in
``modelport.monitor.tables``.

Exit codes: 0 when the report was produced, drift or not (a report is not a failure); 3 with
``--fail-on-drift`` when drift was found (for CI pipelines); 1 for bad input; 2 for usage.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from modelport.cli.context import AppContext, pass_app
from modelport.cli.examples import examples
from modelport.cli.output import console, output_option, parse_pairs, print_json
from modelport.core.errors import ValidationError
from modelport.core.extras import require_extra

if TYPE_CHECKING:  # imported lazily at run time: scipy and pandas stay out of other commands
    from modelport.monitor.drift import DriftReport

DRIFT_EXIT_CODE = 3
_SHORT_METRIC = {"normalized_wasserstein_distance": "NWD", "jensen_shannon_distance": "JSD"}


@click.group(
    "monitor",
    epilog=examples(
        (
            "What blue received today against the training set",
            "modelport monitor drift --baseline train.parquet --target iris/blue --since 24h",
        ),
    ),
)
def monitor() -> None:
    """Watch deployed models: drift of inputs and predictions against a baseline."""


@monitor.command(
    "drift",
    epilog=examples(
        (
            "What blue collected in the last day against the training set, with an HTML report",
            "modelport monitor drift --baseline train.parquet --target iris/blue --since 24h --html drift.html",
        ),
        (
            "Two files, in CI: exit 3 when drift is found",
            "modelport monitor drift --baseline train.parquet --target today.csv -o json --fail-on-drift",
        ),
        (
            "Stricter numeric columns, and a code column read as categorical",
            "modelport monitor drift --baseline train.csv --target today.csv --threshold numerical=0.05 --categorical zip",
        ),
    ),
)
@click.option(
    "--baseline",
    required=True,
    metavar="PATH",
    help="Reference data (e.g. the training set): a Parquet, CSV or JSONL file or a folder of them.",
)
@click.option(
    "--target",
    required=True,
    metavar="PATH|ENDPOINT/DEPLOYMENT",
    help="Data to check: a file or folder, or an online deployment's collected payload.",
)
@click.option(
    "--features",
    default=None,
    metavar="A,B",
    help="Compare only these columns (each must be on both sides) [default: all shared columns].",
)
@click.option(
    "--categorical", default=None, metavar="A,B", help="Treat these columns as categorical whatever their dtype."
)
@click.option(
    "--predictions",
    default=None,
    metavar="A,B",
    help="Label these columns as predictions (a deployment's model_outputs always are).",
)
@click.option(
    "--since",
    default=None,
    metavar="DURATION",
    help="Only target rows whose time is within the last 90s, 30m, 24h, 7d...",
)
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="TYPE=VALUE",
    help="numerical=0.1 (normalized Wasserstein) or categorical=0.1 (Jensen-Shannon); repeatable.",
)
@click.option(
    "--html",
    "html_path",
    default=None,
    metavar="REPORT.html",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a self-contained HTML report with a distribution plot per column.",
)
@click.option("--fail-on-drift", is_flag=True, help=f"Exit {DRIFT_EXIT_CODE} when drift is found (CI pipelines).")
@output_option
@pass_app
def drift(
    app: AppContext,
    baseline: str,
    target: str,
    features: str | None,
    categorical: str | None,
    predictions: str | None,
    since: str | None,
    thresholds: tuple[str, ...],
    html_path: Path | None,
    fail_on_drift: bool,
    output: str,
) -> None:
    """Compare --target with --baseline column by column and say which columns drifted.

    Exits 0 whether or not drift is found (a report is not a failure); 3 with --fail-on-drift
    when it is.
    """
    require_extra("drift", "monitor drift")
    from modelport.monitor.tables import parse_since

    limits = _thresholds(thresholds)
    wanted = _columns(features, "--features")
    forced = _columns(categorical, "--categorical") or []
    labelled = _columns(predictions, "--predictions") or []
    if since is not None:
        parse_since(since)  # a bad --since is refused before any file is read
    if html_path is not None and not html_path.resolve().parent.is_dir():
        raise ValidationError(f"--html: the folder {html_path.parent} does not exist")
    from modelport.monitor.check import drift_check  # scipy: only once the options are known good
    from modelport.monitor.drift import Thresholds

    report, warnings = drift_check(
        baseline,
        target,
        lambda: app.workspace.root,
        since=since,
        features=wanted,
        categorical=forced,
        predictions=labelled,
        thresholds=Thresholds(**limits),
    )
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if html_path is not None:
        from modelport.monitor.report import write_html

        write_html(report, html_path)
    if output == "json":
        print_json(report.to_dict())
    else:
        _print_report(report)
    if html_path is not None:
        click.echo(f"report written to {html_path}", err=output == "json")
    if fail_on_drift and report.drifted:
        # not click's Exit: main() runs click with standalone_mode=False, which returns Exit's code unused
        sys.exit(DRIFT_EXIT_CODE)


def _print_report(report: DriftReport) -> None:
    """A compact table (no borders, columns one space apart) so that 80 columns hold it."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"{report.target_source} vs {report.baseline_source}", box=box.SIMPLE_HEAD, show_edge=False, padding=0
    )
    table.add_column("column", overflow="fold")
    for name in ("kind", "type", "metric", "threshold", "PSI", "p-value", "drifted"):
        table.add_column(name, justify="right" if name in ("threshold", "PSI", "p-value") else "left")
    for c in report.columns:
        table.add_row(
            c.name,
            c.kind,
            c.type,
            f"{_SHORT_METRIC.get(c.metric, c.metric)} {_num(c.value)}",
            f"{c.threshold:g}",
            _num(c.metrics.get("psi")),
            _p(c.pvalue),
            "yes" if c.drifted else "no",
        )
    console().print(table)
    for skipped in report.skipped:
        click.echo(f"skipped {skipped.name}: {skipped.reason}")
    click.echo(
        f"baseline {report.baseline_rows} rows, target {report.target_rows} rows"
        + (f" (last {report.since})" if report.since else "")
    )
    drifted = report.drifted
    if drifted:
        click.echo(
            f"drift: {len(drifted)} of {len(report.columns)} columns over their threshold ({', '.join(drifted)})"
        )
    else:
        click.echo(f"no drift: none of {len(report.columns)} columns over its threshold")


def _thresholds(values: tuple[str, ...]) -> dict[str, float]:
    """``--threshold numerical=0.2`` → ``{"numerical": 0.2}``, the keyword arguments of ``Thresholds``."""
    limits: dict[str, float] = {}
    for key, text in parse_pairs(values, "--threshold").items():
        if key not in ("numerical", "categorical"):
            raise ValidationError(f"--threshold: {key!r} is not numerical or categorical")
        try:
            limits[key] = float(text)
        except ValueError:
            limits[key] = -1.0
        if not limits[key] >= 0:
            raise ValidationError(f"--threshold: {key}={text} is not a number ≥ 0")
    return limits


def _columns(value: str | None, option: str) -> list[str] | None:
    """``a, b`` → ``["a", "b"]``; None when the option was not given."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise ValidationError(f"{option}: no column names given")
    return names


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _p(value: float | None) -> str:
    return "–" if value is None else ("<1e-300" if value == 0 else f"{value:.2g}")
