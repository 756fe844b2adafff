"""Data and prediction drift: a target table compared with a baseline, column by column.

Azure ML's model monitoring is the model: every compared column gets one *deciding* metric
with a threshold (numeric: normalized Wasserstein distance, categorical: Jensen-Shannon
distance, both 0.1 by default), the other metrics are reported alongside, and the verdict is
"drift" as soon as one column's deciding metric exceeds its threshold. The functions here are
pure (pandas/numpy in, dataclasses out), so the CLI, tests and later schedulers share them.

Column types (decided on the baseline alone, so a column keeps its type from one target
window to the next):

* ``numeric``: a numeric dtype (not bool) on both sides with more than
  ``CATEGORICAL_MAX_DISTINCT`` (20) distinct baseline values;
* ``categorical``: everything else (strings, bools, pandas categoricals, numbers with few
  distinct values such as codes or labels), and any column named in ``categorical``.
  Timestamps are not compared. ``request_id``, ``time`` and ``row`` are metadata, never features.

Metrics (missing values, and ±inf in numeric columns, are left out and counted per side):

* ``normalized_wasserstein_distance``: Wasserstein-1 distance divided by the baseline's
  standard deviation (population, ddof=0), i.e. measured in baseline sigmas: a whole
  distribution shifted by one sigma scores 1, an unchanged one about 0. A constant baseline
  falls back to the pooled standard deviation (0 when both sides are the same constant).
* ``psi``: population stability index, sum of (t - b) * ln(t / b) over bins of proportions;
  numeric bins are cut at the baseline's deciles (10 bins, tied edges merged), categorical
  bins are the categories; proportions below ``PSI_EPSILON`` are raised to it so empty bins
  stay finite.
* ``ks_statistic`` / ``ks_pvalue``: two-sample Kolmogorov-Smirnov (``scipy.stats.ks_2samp``).
* ``jensen_shannon_distance``: ``scipy.spatial.distance.jensenshannon`` in base 2, in [0, 1].
* ``chi2_statistic`` / ``chi2_pvalue``: Pearson's chi-squared test of homogeneity on the
  2 x K table of category counts (``scipy.stats.chi2_contingency``, no continuity correction).

With large samples the p-values flag differences too small to matter; that is why a distance,
not a test, decides.

JSON shape (``DriftReport.to_dict``; ``modelport monitor drift -o json`` prints it)::

    {
      "verdict": "drift" | "no_drift",
      "drifted": ["num_shift", ...],                 # names of drifted columns
      "thresholds": {"numerical": 0.1, "categorical": 0.1},
      "baseline": {"source": "train.parquet", "rows": 5000},
      "target": {"source": "fraud/blue", "rows": 4200, "since": "24h" | null},
      "features": [{
        "name": "age", "kind": "feature" | "prediction", "type": "numeric" | "categorical",
        "metric": "normalized_wasserstein_distance" | "jensen_shannon_distance",
        "value": 1.02, "threshold": 0.1, "drifted": true,
        "metrics": {"normalized_wasserstein_distance": ..., "wasserstein_distance": ..., "psi": ...,
                    "ks_statistic": ..., "ks_pvalue": ...}          # numeric
                 | {"jensen_shannon_distance": ..., "psi": ..., "chi2_statistic": ..., "chi2_pvalue": ...},
        "baseline_count": 5000, "target_count": 4200,           # values compared
        "baseline_missing": 0, "target_missing": 3,             # missing values left out
        "distribution": {"edges": [...31 floats], "baseline": [...30], "target": [...30]}     # numeric
                      | {"categories": ["a", ...], "baseline": [...], "target": [...]}       # categorical
      }, ...],
      "skipped": [{"name": "extra", "reason": "only in the target"}, ...]
    }

Distribution values are proportions of each side's compared values; numeric plot bins share
30 equal-width edges over both sides' 0.5-99.5 % range (values beyond fall in the end bins);
categorical plots keep the 20 most frequent categories and sum the rest into ``(other)``.
Metric values that cannot be computed are ``null``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance

from modelport.core.errors import ValidationError

METADATA_COLUMNS = ("request_id", "time", "row")
CATEGORICAL_MAX_DISTINCT = 20
PSI_BINS = 10
PSI_EPSILON = 1e-4
PLOT_BINS = 30
PLOT_CATEGORIES = 20
NUMERIC, CATEGORICAL = "numeric", "categorical"
FEATURE, PREDICTION = "feature", "prediction"
DECIDING_METRIC = {NUMERIC: "normalized_wasserstein_distance", CATEGORICAL: "jensen_shannon_distance"}


@dataclass(frozen=True)
class Thresholds:
    """Deciding-metric thresholds per column type (Azure ML's defaults)."""

    numerical: float = 0.1
    categorical: float = 0.1

    def for_type(self, column_type: str) -> float:
        return self.numerical if column_type == NUMERIC else self.categorical

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Distribution:
    """What a report plots: proportions per shared bin (``edges``) or per category."""

    baseline: list[float]
    target: list[float]
    edges: list[float] | None = None
    categories: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class ColumnDrift:
    """One compared column: its deciding metric against the threshold, and all metrics."""

    name: str
    kind: str
    type: str
    metric: str
    value: float | None
    threshold: float
    drifted: bool
    metrics: dict[str, float | None]
    baseline_count: int
    target_count: int
    baseline_missing: int
    target_missing: int
    distribution: Distribution

    @property
    def pvalue(self) -> float | None:
        """The test's p-value shown next to the distance (KS for numeric, chi-squared otherwise)."""
        return self.metrics.get("ks_pvalue" if self.type == NUMERIC else "chi2_pvalue")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["distribution"] = self.distribution.to_dict()
        return data


@dataclass(frozen=True)
class Skipped:
    """A column that was not compared, and why."""

    name: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class DriftReport:
    """Every compared column, the skipped ones, and the overall verdict."""

    columns: list[ColumnDrift]
    skipped: list[Skipped]
    thresholds: Thresholds
    baseline_rows: int
    target_rows: int
    baseline_source: str = ""
    target_source: str = ""
    since: str | None = None

    @property
    def drifted(self) -> list[str]:
        return [column.name for column in self.columns if column.drifted]

    @property
    def verdict(self) -> str:
        return "drift" if self.drifted else "no_drift"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "drifted": self.drifted,
            "thresholds": self.thresholds.to_dict(),
            "baseline": {"source": self.baseline_source, "rows": self.baseline_rows},
            "target": {"source": self.target_source, "rows": self.target_rows, "since": self.since},
            "features": [column.to_dict() for column in self.columns],
            "skipped": [skipped.to_dict() for skipped in self.skipped],
        }


# -- the comparison ------------------------------------------------------------------------------


def compare(
    baseline: pd.DataFrame,
    target: pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    categorical: Iterable[str] = (),
    predictions: Iterable[str] = (),
    thresholds: Thresholds = Thresholds(),
    baseline_source: str = "",
    target_source: str = "",
    since: str | None = None,
) -> DriftReport:
    """Compare the chosen columns (``features``, else every column both tables share).

    Explicitly chosen columns must exist on both sides; otherwise columns found on one side
    only are listed as skipped. ``predictions`` only labels columns (kind ``prediction``).
    """
    categorical, predictions = set(categorical), set(predictions)
    _check_names(categorical, "--categorical", baseline, target)
    _check_names(predictions, "--predictions", baseline, target)
    skipped: list[Skipped] = []
    if features:
        for name in features:
            if name in METADATA_COLUMNS:
                raise ValidationError(
                    f"--features: {name!r} is metadata ({', '.join(METADATA_COLUMNS)}), not a feature"
                )
            missing = [
                side for side, frame in (("baseline", baseline), ("target", target)) if name not in frame.columns
            ]
            if missing:
                raise ValidationError(f"--features: column {name!r} is not in the {' nor the '.join(missing)}")
        selected = list(dict.fromkeys(features))
    else:
        selected = [name for name in baseline.columns if name in target.columns and name not in METADATA_COLUMNS]
        skipped += [
            Skipped(name, "only in the baseline")
            for name in baseline.columns
            if name not in target.columns and name not in METADATA_COLUMNS
        ]
        skipped += [
            Skipped(name, "only in the target")
            for name in target.columns
            if name not in baseline.columns and name not in METADATA_COLUMNS
        ]
        if not selected:
            raise ValidationError(
                f"--target: no column in common with the baseline (baseline: {_names(baseline)}; target: {_names(target)})"
            )
    columns: list[ColumnDrift] = []
    unusable: list[Skipped] = []
    for name in selected:
        kind = PREDICTION if name in predictions else FEATURE
        result = compare_column(
            name, baseline[name], target[name], kind=kind, force_categorical=name in categorical, thresholds=thresholds
        )
        if isinstance(result, ColumnDrift):
            columns.append(result)
        else:
            unusable.append(result)
    if not columns:
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in unusable[:8])
        raise ValidationError(f"--target: no column could be compared ({reasons})")
    skipped += unusable
    return DriftReport(columns, skipped, thresholds, len(baseline), len(target), baseline_source, target_source, since)


def compare_column(
    name: str,
    baseline: pd.Series,
    target: pd.Series,
    *,
    kind: str = FEATURE,
    force_categorical: bool = False,
    thresholds: Thresholds = Thresholds(),
) -> ColumnDrift | Skipped:
    """One column's metrics and decision, or why it cannot be compared."""
    column_type = CATEGORICAL if force_categorical else column_type_of(baseline, target)
    if column_type is None:
        return Skipped(name, "timestamps are not compared")
    if column_type == NUMERIC:
        b, t = _finite(baseline), _finite(target)
    else:
        b, t = baseline.dropna(), target.dropna()
    for side, values in (("baseline", b), ("target", t)):
        if len(values) == 0:
            return Skipped(name, f"no values in the {side}")
    if column_type == NUMERIC:
        metrics, distribution = numeric_metrics(b, t), numeric_distribution(b, t)
    else:
        if _holds_containers(b) or _holds_containers(t):  # e.g. a tensor row too wide to flatten
            return Skipped(name, "values are not scalars")
        metrics, distribution = categorical_metrics(b, t), categorical_distribution(b, t)
    metric = DECIDING_METRIC[column_type]
    value = metrics[metric]
    threshold = thresholds.for_type(column_type)
    return ColumnDrift(
        name=name,
        kind=kind,
        type=column_type,
        metric=metric,
        value=value,
        threshold=threshold,
        drifted=value is not None and value > threshold,
        metrics=metrics,
        baseline_count=len(b),
        target_count=len(t),
        baseline_missing=len(baseline) - len(b),
        target_missing=len(target) - len(t),
        distribution=distribution,
    )


def column_type_of(baseline: pd.Series, target: pd.Series) -> str | None:
    """``numeric``, ``categorical``, or None for timestamps (see the module docstring)."""
    if any(pd.api.types.is_datetime64_any_dtype(s) or isinstance(s.dtype, pd.PeriodDtype) for s in (baseline, target)):
        return None
    if _is_number(baseline) and _is_number(target) and baseline.nunique(dropna=True) > CATEGORICAL_MAX_DISTINCT:
        return NUMERIC
    return CATEGORICAL


# -- numeric -------------------------------------------------------------------------------------


def numeric_metrics(baseline: np.ndarray, target: np.ndarray) -> dict[str, float | None]:
    """Normalized Wasserstein distance, Wasserstein-1, PSI and KS of two finite samples."""
    distance = float(wasserstein_distance(baseline, target))
    scale = float(np.std(baseline)) or float(np.std(np.concatenate([baseline, target])))
    ks = ks_2samp(baseline, target)
    return {
        "normalized_wasserstein_distance": distance / scale if scale > 0 else 0.0,
        "wasserstein_distance": distance,
        "psi": numeric_psi(baseline, target),
        "ks_statistic": _number(ks.statistic),
        "ks_pvalue": _number(ks.pvalue),
    }


def numeric_psi(baseline: np.ndarray, target: np.ndarray, bins: int = PSI_BINS) -> float:
    """PSI over bins cut at the baseline's quantiles, so each bin holds ~1/bins of the baseline."""
    edges = np.unique(np.quantile(baseline, np.linspace(0, 1, bins + 1)[1:-1]))
    return psi(_bin_counts(baseline, edges), _bin_counts(target, edges))


def psi(baseline_counts: np.ndarray, target_counts: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two count vectors over the same bins."""
    b = np.maximum(baseline_counts / baseline_counts.sum(), epsilon)
    t = np.maximum(target_counts / target_counts.sum(), epsilon)
    return float(np.sum((t - b) * np.log(t / b)))


def numeric_distribution(baseline: np.ndarray, target: np.ndarray, bins: int = PLOT_BINS) -> Distribution:
    """Shared equal-width bins over both sides' 0.5-99.5 % range, for overlaid histograms."""
    lo = float(min(np.quantile(baseline, 0.005), np.quantile(target, 0.005)))
    hi = float(max(np.quantile(baseline, 0.995), np.quantile(target, 0.995)))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)

    def proportions(values: np.ndarray) -> list[float]:
        counts, _ = np.histogram(np.clip(values, lo, hi), edges)
        return (counts / len(values)).tolist()

    return Distribution(proportions(baseline), proportions(target), edges=edges.tolist())


def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1).astype(float)


def _finite(series: pd.Series) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return values[np.isfinite(values)]


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


# -- categorical ---------------------------------------------------------------------------------


def categorical_metrics(baseline: pd.Series, target: pd.Series) -> dict[str, float | None]:
    """Jensen-Shannon distance, PSI and chi-squared over the union of both sides' categories."""
    b, t = _aligned_counts(baseline, target)
    distance = float(jensenshannon(b, t, base=2))
    if len(b) < 2:  # one category on both sides: nothing can differ
        statistic, pvalue = 0.0, 1.0
    else:
        test = chi2_contingency(np.vstack([b, t]), correction=False)
        statistic, pvalue = test.statistic, test.pvalue
    return {
        "jensen_shannon_distance": distance if np.isfinite(distance) else 0.0,  # rounding: sqrt(-1e-17)
        "psi": psi(b, t),
        "chi2_statistic": _number(statistic),
        "chi2_pvalue": _number(pvalue),
    }


def categorical_distribution(baseline: pd.Series, target: pd.Series, limit: int = PLOT_CATEGORIES) -> Distribution:
    """Proportions of the most frequent categories (both sides together); the rest as ``(other)``."""
    b, t = _category_counts(baseline), _category_counts(target)
    pb, pt = b / b.sum(), t / t.sum()
    categories = (pb.add(pt, fill_value=0)).sort_values(ascending=False, kind="stable").index.tolist()
    shown = categories[:limit]
    rows_b = [float(pb.get(c, 0.0)) for c in shown]
    rows_t = [float(pt.get(c, 0.0)) for c in shown]
    if len(categories) > limit:
        shown = [*shown, "(other)"]
        rows_b.append(max(0.0, 1.0 - sum(rows_b)))
        rows_t.append(max(0.0, 1.0 - sum(rows_t)))
    return Distribution(rows_b, rows_t, categories=shown)


def _aligned_counts(baseline: pd.Series, target: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Count vectors over the same categories: the baseline's, then those seen only in the target."""
    b, t = _category_counts(baseline), _category_counts(target)
    categories = [*b.index, *(c for c in t.index if c not in b.index)]
    return (b.reindex(categories, fill_value=0).to_numpy(float), t.reindex(categories, fill_value=0).to_numpy(float))


def _category_counts(values: pd.Series) -> pd.Series:
    """Counts by category label; labels are strings so ``1``, ``1.0`` and ``"1"`` are one category."""
    counts = values.value_counts(dropna=True)
    counts = counts[counts > 0]  # a pandas Categorical also lists the categories it never holds
    counts.index = [_label(value) for value in counts.index]
    return counts.groupby(level=0, sort=False).sum().sort_values(ascending=False, kind="stable")


def _holds_containers(values: pd.Series) -> bool:
    if values.dtype != object:
        return False
    return bool(values.map(lambda v: isinstance(v, (list, tuple, dict, set, np.ndarray))).any())


def _label(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


# -- helpers -------------------------------------------------------------------------------------


def _check_names(names: set[str], option: str, baseline: pd.DataFrame, target: pd.DataFrame) -> None:
    for name in sorted(names):
        if name not in baseline.columns and name not in target.columns:
            raise ValidationError(f"{option}: column {name!r} is in neither the baseline nor the target")


def _names(frame: pd.DataFrame, limit: int = 8) -> str:
    names = [str(name) for name in frame.columns if name not in METADATA_COLUMNS]
    shown = ", ".join(names[:limit]) or "no columns"
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _number(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
