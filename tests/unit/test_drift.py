"""Drift statistics: the acceptance scenario, known values of each metric, and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from modelport.core.errors import ValidationError
from modelport.monitor.drift import (
    CATEGORICAL,
    NUMERIC,
    ColumnDrift,
    Skipped,
    Thresholds,
    categorical_metrics,
    column_type_of,
    compare,
    compare_column,
    numeric_metrics,
    numeric_psi,
)
from modelport.monitor.report import render_html

N = 5000


def scenario(seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Baseline and target: one numeric feature shifted by one sigma, one categorical feature
    re-weighted, one numeric and one categorical feature unchanged."""
    rng = np.random.default_rng(seed)
    cats = np.array(["a", "b", "c"])
    baseline = pd.DataFrame(
        {
            "shifted": rng.normal(10.0, 2.0, N),
            "reweighted": rng.choice(cats, N, p=[0.5, 0.3, 0.2]),
            "steady": rng.normal(0.0, 1.0, N),
            "steady_cat": rng.choice(cats, N, p=[0.6, 0.3, 0.1]),
        }
    )
    target = pd.DataFrame(
        {
            "shifted": rng.normal(12.0, 2.0, N),
            "reweighted": rng.choice(cats, N, p=[0.2, 0.3, 0.5]),
            "steady": rng.normal(0.0, 1.0, N),
            "steady_cat": rng.choice(cats, N, p=[0.6, 0.3, 0.1]),
        }
    )
    return baseline, target


def by_name(report) -> dict[str, ColumnDrift]:  # noqa: ANN001
    return {column.name: column for column in report.columns}


def test_acceptance_shifted_and_reweighted_are_flagged_unchanged_are_not() -> None:
    report = compare(*scenario())
    columns = by_name(report)
    assert report.verdict == "drift"
    assert report.drifted == ["shifted", "reweighted"]
    assert columns["shifted"].type == NUMERIC and columns["shifted"].metric == "normalized_wasserstein_distance"
    assert columns["shifted"].value == pytest.approx(1.0, abs=0.08)  # one baseline sigma
    assert columns["steady"].value < 0.05 and not columns["steady"].drifted
    assert columns["reweighted"].type == CATEGORICAL and columns["reweighted"].metric == "jensen_shannon_distance"
    assert columns["reweighted"].value == pytest.approx(math.sqrt(0.0958), abs=0.03)
    assert columns["steady_cat"].value < 0.05 and not columns["steady_cat"].drifted
    assert {c.threshold for c in report.columns} == {0.1}


def test_no_drift_verdict_and_thresholds_are_configurable() -> None:
    baseline, target = scenario()
    report = compare(baseline, target, features=["steady", "steady_cat"])
    assert report.verdict == "no_drift" and report.drifted == []
    lenient = compare(baseline, target, thresholds=Thresholds(numerical=2.0, categorical=0.5))
    assert lenient.verdict == "no_drift"
    strict = compare(baseline, target, thresholds=Thresholds(numerical=0.0, categorical=0.0))
    assert set(strict.drifted) == {"shifted", "reweighted", "steady", "steady_cat"}


def test_psi_known_values() -> None:
    counts = pd.Series(["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    moved = pd.Series(["a"] * 20 + ["b"] * 30 + ["c"] * 50)
    expected = (0.2 - 0.5) * math.log(0.2 / 0.5) + (0.5 - 0.2) * math.log(0.5 / 0.2)
    assert categorical_metrics(counts, moved)["psi"] == pytest.approx(expected)
    values = np.arange(1000, dtype=float)
    assert numeric_psi(values, values) == pytest.approx(0.0)
    # the target's values all in the baseline's top decile: 9 bins at epsilon, one at 1.0
    top = np.full(100, 995.0)
    psi = 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1) + (1.0 - 0.1) * math.log(1.0 / 0.1)
    assert numeric_psi(values, top) == pytest.approx(psi, rel=1e-3)


def test_ks_and_jsd_known_values() -> None:
    low, high = np.arange(100, dtype=float), np.arange(1000, 1100, dtype=float)
    metrics = numeric_metrics(low, high)
    assert metrics["ks_statistic"] == pytest.approx(1.0) and metrics["ks_pvalue"] < 1e-10
    assert metrics["wasserstein_distance"] == pytest.approx(1000.0)
    assert metrics["normalized_wasserstein_distance"] == pytest.approx(1000.0 / np.std(low))
    same = numeric_metrics(low, low.copy())
    assert same["ks_statistic"] == 0 and same["ks_pvalue"] == pytest.approx(1.0) and same["psi"] == 0
    disjoint = categorical_metrics(pd.Series(["x"] * 10), pd.Series(["y"] * 10))
    assert disjoint["jensen_shannon_distance"] == pytest.approx(1.0)  # base 2: at most 1
    identical = categorical_metrics(pd.Series(list("aabbc")), pd.Series(list("aabbc")))
    assert identical["jensen_shannon_distance"] == 0.0 and identical["chi2_pvalue"] == pytest.approx(1.0)


def test_column_types() -> None:
    ints = pd.Series(np.arange(1000) % 5)
    assert column_type_of(ints, ints) == CATEGORICAL  # low-cardinality ints are codes
    assert column_type_of(pd.Series(np.arange(1000)), pd.Series(np.arange(5))) == NUMERIC  # decided on the baseline
    assert column_type_of(pd.Series([True, False] * 20), pd.Series([True] * 5)) == CATEGORICAL
    assert column_type_of(pd.Series(np.linspace(0, 1, 50)), pd.Series(["a"] * 3)) == CATEGORICAL  # mixed
    assert (
        column_type_of(
            pd.Series(pd.date_range("2026-01-01", periods=30)), pd.Series(pd.date_range("2026-02-01", periods=3))
        )
        is None
    )
    forced = compare_column("x", pd.Series(np.arange(100.0)), pd.Series(np.arange(100.0)), force_categorical=True)
    assert isinstance(forced, ColumnDrift) and forced.type == CATEGORICAL


def test_constant_columns() -> None:
    same = compare_column("c", pd.Series([3.0] * 100), pd.Series([3.0] * 80))
    assert isinstance(same, ColumnDrift) and same.value == 0.0 and not same.drifted
    changed = compare_column("c", pd.Series([3.0] * 100), pd.Series([4.0] * 80))
    assert isinstance(changed, ColumnDrift) and changed.value == pytest.approx(1.0) and changed.drifted
    # a constant baseline in the numeric path falls back to the pooled deviation; equal constants give 0
    assert numeric_metrics(np.full(50, 2.0), np.full(50, 2.0))["normalized_wasserstein_distance"] == 0.0
    assert numeric_metrics(np.full(50, 2.0), np.full(50, 3.0))["normalized_wasserstein_distance"] == pytest.approx(2.0)


def test_missing_values_are_left_out_and_counted() -> None:
    rng = np.random.default_rng(3)
    baseline = pd.Series(rng.normal(size=2000))
    target = pd.Series(np.concatenate([rng.normal(size=1900), [np.nan] * 95, [np.inf] * 5]))
    result = compare_column("x", baseline, target)
    assert isinstance(result, ColumnDrift) and not result.drifted
    assert (result.target_count, result.target_missing, result.baseline_missing) == (1900, 100, 0)
    cats = compare_column("c", pd.Series(["a", "b", None] * 10), pd.Series(["a", "b", np.nan, "a"] * 10))
    assert isinstance(cats, ColumnDrift) and (cats.baseline_missing, cats.target_missing) == (10, 10)
    empty = compare_column("e", pd.Series([1.0, 2.0]), pd.Series([np.nan, np.nan]))
    assert empty == Skipped("e", "no values in the target")


def test_category_only_in_target() -> None:
    baseline = pd.Series(["a", "b"] * 500)
    target = pd.Series(["a", "b"] * 450 + ["new"] * 100)
    result = compare_column("c", baseline, target)
    assert isinstance(result, ColumnDrift)
    assert result.distribution.categories == ["a", "b", "new"]
    assert result.distribution.target[2] == pytest.approx(0.1) and result.distribution.baseline[2] == 0
    assert math.isfinite(result.metrics["psi"]) and result.metrics["psi"] > 0.5  # epsilon keeps PSI finite
    assert 0.1 < result.value < 0.3 and result.drifted
    # 1 and 1.0 are one category, whatever dtype each side was read with
    mixed = compare_column("m", pd.Series([1, 2, 1, 2]), pd.Series([1.0, 2.0, np.nan, 1.0]))
    assert isinstance(mixed, ColumnDrift) and mixed.distribution.categories == ["1", "2"]


def test_pandas_categoricals_and_nullable_dtypes() -> None:
    levels = ["a", "b", "c", "unused"]
    baseline = pd.Series(pd.Categorical(["a", "b", "c"] * 100, categories=levels))
    target = pd.Series(pd.Categorical(["a", "b", "c"] * 90, categories=levels))
    result = compare_column("c", baseline, target)
    assert isinstance(result, ColumnDrift) and result.distribution.categories == ["a", "b", "c"]
    assert result.value == pytest.approx(0.0) and result.metrics["chi2_pvalue"] == pytest.approx(1.0)
    ints = pd.Series(pd.array(list(range(100)) + [None], dtype="Int64"))
    nullable = compare_column("n", ints, ints)
    assert isinstance(nullable, ColumnDrift) and nullable.type == NUMERIC and nullable.baseline_missing == 1
    lists = compare_column("l", pd.Series([[1, 2], [3, 4]]), pd.Series([[1, 2]]))
    assert lists == Skipped("l", "values are not scalars")


def test_selection_skips_and_errors() -> None:
    baseline, target = scenario()
    baseline["only_b"], target["only_t"] = 1, 2
    baseline["time"] = target["time"] = pd.Timestamp("2026-01-01", tz="UTC")
    report = compare(baseline, target, predictions=["steady"])
    assert {s.name: s.reason for s in report.skipped} == {
        "only_b": "only in the baseline",
        "only_t": "only in the target",
    }
    assert "time" not in by_name(report) and by_name(report)["steady"].kind == "prediction"
    with pytest.raises(ValidationError, match=r"--features: column 'only_t' is not in the baseline"):
        compare(baseline, target, features=["shifted", "only_t"])
    with pytest.raises(ValidationError, match=r"--features: 'time' is metadata"):
        compare(baseline, target, features=["time"])
    with pytest.raises(ValidationError, match=r"--categorical: column 'nope'"):
        compare(baseline, target, categorical=["nope"])
    with pytest.raises(ValidationError, match=r"--target: no column in common"):
        compare(pd.DataFrame({"a": [1]}), pd.DataFrame({"b": [1]}))
    with pytest.raises(ValidationError, match=r"--target: no column could be compared \(a: no values in the target\)"):
        compare(pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": [np.nan]}))


def test_to_dict_shape() -> None:
    report = compare(*scenario(), baseline_source="b.parquet", target_source="t.csv", since="24h")
    data = report.to_dict()
    assert set(data) == {"verdict", "drifted", "thresholds", "baseline", "target", "features", "skipped"}
    assert data["baseline"] == {"source": "b.parquet", "rows": N}
    assert data["target"] == {"source": "t.csv", "rows": N, "since": "24h"}
    assert data["thresholds"] == {"numerical": 0.1, "categorical": 0.1}
    numeric = data["features"][0]
    assert set(numeric["metrics"]) == {
        "normalized_wasserstein_distance",
        "wasserstein_distance",
        "psi",
        "ks_statistic",
        "ks_pvalue",
    }
    assert len(numeric["distribution"]["edges"]) == len(numeric["distribution"]["baseline"]) + 1
    categorical = data["features"][1]
    assert set(categorical["metrics"]) == {"jensen_shannon_distance", "psi", "chi2_statistic", "chi2_pvalue"}
    assert sum(categorical["distribution"]["target"]) == pytest.approx(1.0)


def test_html_escapes_names_and_has_one_plot_per_column() -> None:
    baseline, target = scenario()
    baseline["<b>&x"] = target["<b>&x"] = ["q", "r"] * (N // 2)
    html = render_html(compare(baseline, target))
    assert html.count("<svg") == 5
    assert "<b>&x" not in html and "&lt;b&gt;&amp;x" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
