"""A drift check from start to end: the baseline read, the target read (a file, a folder, or a
deployment's collected payload), and the two compared.

``modelport monitor drift`` and the dashboard's drift page both run this, so a page shows the
report the command prints for the same inputs, and refuses what it refuses in its words (the
options' names, ``--baseline``/``--target``/``--since``, are the errors' field names in both).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from modelport.monitor.drift import DriftReport, Thresholds, compare
from modelport.monitor.tables import load_target, parse_since, read_table


def drift_check(
    baseline: str,
    target: str,
    workspace_root: Callable[[], Path],
    *,
    since: str | None = None,
    features: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    predictions: Sequence[str] = (),
    thresholds: Thresholds | None = None,
) -> tuple[DriftReport, list[str]]:
    """The report, and warnings about collected files left out (being written)."""
    window = parse_since(since) if since is not None else None
    base = read_table(baseline, "--baseline")
    data = load_target(target, workspace_root, since=window, since_text=since)
    report = compare(
        base.frame,
        data.frame,
        features=features,
        categorical=categorical,
        predictions=[*predictions, *data.predictions],
        thresholds=thresholds or Thresholds(),
        baseline_source=base.source,
        target_source=data.source,
        since=since,
    )
    return report, data.warnings
