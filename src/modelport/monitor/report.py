"""A drift report as one self-contained HTML file: summary, table, one plot per column.

Everything is inline (CSS in a ``<style>`` element, plots as inline SVG drawn here), and a
Content-Security-Policy forbids any fetch, so the file opens the same offline, attached to a
ticket or archived by a CI job. Every piece of data-derived text goes through ``html.escape``.

Plots: numeric columns overlay the baseline and target histograms on shared bins; categorical
columns show grouped bars per category. Both use the proportions in ``ColumnDrift.distribution``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from pathlib import Path

from modelport.core.errors import ValidationError
from modelport.monitor.drift import NUMERIC, ColumnDrift, Distribution, DriftReport

BASELINE_COLOR = "#4c78a8"
TARGET_COLOR = "#f58518"
WIDTH, HEIGHT = 640, 240
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 12, 28, 56

_CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 24px; max-width: 1100px; }
h1 { font-size: 22px; margin: 0 0 8px; } h2 { font-size: 18px; margin-top: 28px; } h3 { font-size: 15px; margin: 0 0 4px; }
.verdict { font-size: 16px; font-weight: 600; padding: 8px 12px; border-radius: 4px; display: inline-block; }
.verdict.drift { background: #fde2e1; color: #9b1c1c; } .verdict.no_drift { background: #def7e5; color: #14532d; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; } dt { color: #666; } dd { margin: 0; }
table { border-collapse: collapse; margin-top: 8px; } th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } tr.drifted td { background: #fff4f3; }
section { margin: 18px 0; padding-top: 8px; border-top: 1px solid #eee; } .meta { color: #555; margin: 0 0 6px; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
"""


def render_html(
    report: DriftReport, *, title: str = "modelport drift report", generated: datetime | None = None
) -> str:
    """The whole report as a string."""
    generated = generated or datetime.now(timezone.utc)
    drifted = report.drifted
    verdict = (
        f"Drift: {len(drifted)} of {len(report.columns)} columns over their threshold ({', '.join(drifted)})"
        if drifted
        else f"No drift: none of {len(report.columns)} columns over its threshold"
    )
    since = f", last {report.since}" if report.since else ""
    summary = [
        ("baseline", f"{report.baseline_source} ({report.baseline_rows} rows)"),
        ("target", f"{report.target_source} ({report.target_rows} rows{since})"),
        (
            "thresholds",
            f"numerical (normalized Wasserstein) {report.thresholds.numerical}, "
            f"categorical (Jensen-Shannon) {report.thresholds.categorical}",
        ),
        ("generated", generated.strftime("%Y-%m-%d %H:%M:%S UTC")),
    ]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="verdict {report.verdict}">{escape(verdict)}</p>',
        "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in summary) + "</dl>",
        _table(report),
    ]
    if report.skipped:
        skipped = "; ".join(f"{s.name} ({s.reason})" for s in report.skipped)
        parts.append(f'<p class="meta">Not compared: {escape(skipped)}</p>')
    parts.append("<h2>Distributions</h2>")
    parts += [_section(column) for column in report.columns]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html(report: DriftReport, path: str | Path) -> Path:
    """Write the report; a folder that does not exist or cannot be written is ``--html``'s error."""
    target = Path(path)
    try:
        target.write_text(render_html(report), encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"--html: cannot write {path} ({exc.strerror})") from None
    return target


def distribution_svg(column: ColumnDrift, width: int = WIDTH, height: int = HEIGHT) -> str:
    """One column's baseline-vs-target plot as an inline ``<svg>`` element."""
    dist = column.distribution
    plot = _Plot(width, height, max([*dist.baseline, *dist.target, 1e-12]))
    body = _histogram(dist, plot) if column.type == NUMERIC else _grouped_bars(dist, plot)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img"><title>{escape(column.name)}: baseline vs target</title>'
        f"{plot.axes()}{body}{_legend(width)}</svg>"
    )


# -- pieces of the page --------------------------------------------------------------------------


def _table(report: DriftReport) -> str:
    head = ["column", "kind", "type", "metric", "value", "threshold", "PSI", "p-value", "drifted"]
    rows = []
    for c in report.columns:
        cells = [
            escape(c.name),
            c.kind,
            c.type,
            _METRIC_NAMES[c.metric],
            _num(c.value),
            _num(c.threshold),
            _fmt(c.metrics.get("psi")),
            _p(c.pvalue),
            "yes" if c.drifted else "no",
        ]
        tds = "".join(
            f'<td class="num">{cell}</td>' if 4 <= i <= 7 else f"<td>{cell}</td>" for i, cell in enumerate(cells)
        )
        rows.append(f'<tr class="{"drifted" if c.drifted else ""}">{tds}</tr>')
    return (
        "<table><thead><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _section(column: ColumnDrift) -> str:
    metrics = ", ".join(f"{name} {_fmt(value)}" for name, value in column.metrics.items())
    counts = (
        f"{column.baseline_count} baseline / {column.target_count} target values; "
        f"missing {column.baseline_missing} / {column.target_missing}"
    )
    badge = " — drifted" if column.drifted else ""
    return (
        f"<section><h3>{escape(column.name)} <small>({column.kind}, {column.type}){badge}</small></h3>"
        f'<p class="meta">{escape(metrics)}<br>{escape(counts)}</p>{distribution_svg(column)}</section>'
    )


_METRIC_NAMES = {
    "normalized_wasserstein_distance": "normalized Wasserstein",
    "jensen_shannon_distance": "Jensen-Shannon",
}


# -- SVG -----------------------------------------------------------------------------------------


class _Plot:
    """The drawing area: proportions (0 … ``top``) mapped to pixels, with axes."""

    def __init__(self, width: int, height: int, top: float) -> None:
        self.left, self.right = MARGIN_LEFT, width - MARGIN_RIGHT
        self.top_px, self.bottom = MARGIN_TOP, height - MARGIN_BOTTOM
        self.top, self.scale = top, top * 1.05  # 5 % headroom above the tallest bar

    @property
    def inner_width(self) -> float:
        return self.right - self.left

    def y(self, proportion: float) -> float:
        return self.bottom - (self.bottom - self.top_px) * proportion / self.scale

    def axes(self) -> str:
        ticks = "".join(
            f'<text x="{self.left - 4}" y="{self.y(v) + 4:.1f}" text-anchor="end">{v:.0%}</text>'
            f'<line x1="{self.left}" x2="{self.right}" y1="{self.y(v):.1f}" y2="{self.y(v):.1f}" stroke="#eee"/>'
            for v in (0.0, self.top / 2, self.top)
        )
        return (
            f'{ticks}<line x1="{self.left}" x2="{self.right}" y1="{self.bottom}" y2="{self.bottom}" stroke="#888"/>'
            f'<line x1="{self.left}" x2="{self.left}" y1="{self.top_px}" y2="{self.bottom}" stroke="#888"/>'
        )

    def bar(self, x: float, width: float, proportion: float, color: str, opacity: float = 1.0) -> str:
        y = self.y(proportion)
        return (
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(width, 0.5):.1f}" height="{self.bottom - y:.1f}" '
            f'fill="{color}" fill-opacity="{opacity}"/>'
        )


def _histogram(dist: Distribution, plot: _Plot) -> str:
    """Overlaid, half-transparent histograms on the shared bins, edges labelled below."""
    edges = dist.edges or []
    step = plot.inner_width / max(len(dist.baseline), 1)
    bars = [plot.bar(plot.left + i * step, step - 1, p, BASELINE_COLOR, 0.55) for i, p in enumerate(dist.baseline)]
    bars += [plot.bar(plot.left + i * step, step - 1, p, TARGET_COLOR, 0.55) for i, p in enumerate(dist.target)]
    every = max(len(edges) // 5, 1)
    labels = [(plot.left + i * step, edges[i], "middle") for i in range(0, len(edges) - every // 2, every)]
    if edges:
        labels.append((plot.right, edges[-1], "end"))
    texts = "".join(
        f'<text x="{x:.1f}" y="{plot.bottom + 14}" text-anchor="{anchor}">{_fmt(v)}</text>' for x, v, anchor in labels
    )
    return "".join(bars) + texts


def _grouped_bars(dist: Distribution, plot: _Plot) -> str:
    """Two bars per category (baseline, target), category names below, slanted when many."""
    categories = dist.categories or []
    group = plot.inner_width / max(len(categories), 1)
    bar = group * 0.38
    parts = []
    for i, name in enumerate(categories):
        x = plot.left + i * group + group * 0.12
        parts.append(plot.bar(x, bar, dist.baseline[i], BASELINE_COLOR))
        parts.append(plot.bar(x + bar, bar, dist.target[i], TARGET_COLOR))
        label = escape(name if len(name) <= 12 else name[:11] + "…")
        cx, cy = plot.left + (i + 0.5) * group, plot.bottom + 14
        rotate = (
            f' transform="rotate(-30 {cx:.1f} {cy})" text-anchor="end"'
            if len(categories) > 8
            else ' text-anchor="middle"'
        )
        parts.append(f'<text x="{cx:.1f}" y="{cy}"{rotate}>{label}</text>')
    return "".join(parts)


def _legend(width: int) -> str:
    x = width - MARGIN_RIGHT - 150
    return "".join(
        f'<rect x="{x + dx}" y="8" width="12" height="12" fill="{color}"/><text x="{x + dx + 16}" y="18">{name}</text>'
        for dx, color, name in ((0, BASELINE_COLOR, "baseline"), (80, TARGET_COLOR, "target"))
    )


# -- numbers -------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _p(value: float | None) -> str:
    return "–" if value is None else ("< 1e-300" if value == 0 else f"{value:.3g}")
