"""Prometheus text for ``/metrics``: Triton's ``nv_inference_*`` families per model and
version, rendered from the same ``ModelStats`` that ``/stats`` reports, plus the process's
CPU and memory from prometheus-client's standard collectors.

The ``nv_*`` families are written by hand because prometheus-client appends ``_total`` to
counter names, and clients that scrape Triton look for the exact names.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest

from modelport.serving.stats import ModelStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_COUNTERS = (
    ("nv_inference_request_success", "Number of successful inference requests, all batch sizes",
     lambda s: s.success.count),
    ("nv_inference_count", "Number of inferences performed (a batch of n counts n)", lambda s: s.inference_count),
    ("nv_inference_exec_count", "Number of model executions performed", lambda s: s.execution_count),
    ("nv_inference_request_duration_us", "Cumulative inference request duration in microseconds",
     lambda s: (s.success.ns + s.fail.ns) // 1000),
    ("nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds",
     lambda s: s.queue.ns // 1000),
    ("nv_inference_compute_input_duration_us", "Cumulative compute input duration in microseconds",
     lambda s: s.compute_input.ns // 1000),
    ("nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds",
     lambda s: s.compute_infer.ns // 1000),
    ("nv_inference_compute_output_duration_us", "Cumulative inference compute output duration in microseconds",
     lambda s: s.compute_output.ns // 1000),
)
FAILURE_REASONS = ("REJECTED", "CANCELED", "BACKEND", "OTHER")

_process = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=_process)
PlatformCollector(registry=_process)


def _labels(stats: ModelStats, **extra: str) -> str:
    pairs = {"model": stats.name, "version": stats.version, **extra}
    return ",".join(f'{key}="{_escape(value)}"' for key, value in pairs.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(all_stats: Iterable[ModelStats]) -> bytes:
    """The full exposition: one sample per model version and family, then process metrics."""
    all_stats = list(all_stats)
    lines: list[str] = []
    for name, help_text, value in _COUNTERS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        lines += [f"{name}{{{_labels(s)}}} {value(s)}" for s in all_stats]
    lines += ["# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes",
              "# TYPE nv_inference_request_failure counter"]
    for stats in all_stats:
        for reason in FAILURE_REASONS:
            count = stats.failures_by_reason.get(reason, 0)
            lines.append(f"nv_inference_request_failure{{{_labels(stats, reason=reason)}}} {count}")
    lines += ["# HELP nv_inference_pending_request_count Instantaneous number of pending requests awaiting "
              "execution per-model.", "# TYPE nv_inference_pending_request_count gauge"]
    lines += [f"nv_inference_pending_request_count{{{_labels(s)}}} {s.pending}" for s in all_stats]
    return ("\n".join(lines) + "\n").encode() + generate_latest(_process)
