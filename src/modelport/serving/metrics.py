"""Prometheus text for ``/metrics``: Triton's ``nv_inference_*`` families per model and
version, latency, queue and batch-size histograms, rendered from the same ``ModelStats`` that
``/stats`` reports; then the process's CPU and memory, GPUs through NVML when present, and the
request log's and payload collector's counters when the server has them, and the scoring
script's own metrics (``modelport_script_*``, see ``script_metrics``).

The ``nv_*`` families are written by hand because prometheus-client appends ``_total`` to
counter names, and clients that scrape Triton look for the exact names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest

from modelport.core.connections import Connections
from modelport.monitor.collector import PayloadCollector
from modelport.monitor.gpu import GpuCollector
from modelport.monitor.request_log import RequestLog
from modelport.serving.script_metrics import Kind
from modelport.serving.stats import FailureReason, Histogram, ModelStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_COUNTERS = (
    (
        "nv_inference_request_success",
        "Number of successful inference requests, all batch sizes",
        lambda s: s.success.count,
    ),
    ("nv_inference_count", "Number of inferences performed (a batch of n counts n)", lambda s: s.inference_count),
    ("nv_inference_exec_count", "Number of model executions performed", lambda s: s.execution_count),
    (
        "nv_inference_request_duration_us",
        "Cumulative inference request duration in microseconds",
        lambda s: (s.success.ns + s.fail.ns) // 1000,
    ),
    (
        "nv_inference_queue_duration_us",
        "Cumulative inference queuing duration in microseconds",
        lambda s: s.queue.ns // 1000,
    ),
    (
        "nv_inference_compute_input_duration_us",
        "Cumulative compute input duration in microseconds",
        lambda s: s.compute_input.ns // 1000,
    ),
    (
        "nv_inference_compute_infer_duration_us",
        "Cumulative compute inference duration in microseconds",
        lambda s: s.compute_infer.ns // 1000,
    ),
    (
        "nv_inference_compute_output_duration_us",
        "Cumulative inference compute output duration in microseconds",
        lambda s: s.compute_output.ns // 1000,
    ),
)
_HISTOGRAMS: tuple[tuple[str, str, Callable[[ModelStats], Histogram]], ...] = (
    (
        "modelport_inference_request_duration_seconds",
        "Inference request duration, success or failure",
        lambda s: s.request_seconds,
    ),
    (
        "modelport_inference_queue_duration_seconds",
        "Time successful requests waited in the queue",
        lambda s: s.queue_seconds,
    ),
    (
        "modelport_inference_batch_size",
        "Rows per model execution (requests batched together add up)",
        lambda s: s.batch_sizes,
    ),
)

_process = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=_process)
PlatformCollector(registry=_process)
_process.register(GpuCollector())


OBSERVED = (
    ("modelport_request_log_dropped_total", "Request log lines dropped under pressure"),
    ("modelport_collection_records_total", "Sampled requests written by payload collection"),
    ("modelport_collection_dropped_total", "Sampled requests dropped under pressure"),
    (
        "modelport_http_slow_clients_closed_total",
        "Connections closed before their request was read: no complete head "
        "within the header timeout, no body bytes within the body timeout, or evicted at the connection cap",
    ),
    ("modelport_http_connections_refused_total", "Connections answered 503 at once: the connection cap was reached"),
)
WORKER_GAUGES = (
    ("modelport_worker_cpu_seconds_total", "counter", "CPU time of each server worker process", "cpu_seconds"),
    (
        "modelport_worker_resident_memory_bytes",
        "gauge",
        "Resident memory of each server worker process",
        "resident_bytes",
    ),
)


def observed_counts(
    request_log: RequestLog | None, collector: PayloadCollector | None, connections: Connections | None = None
) -> dict[str, float]:
    """The request log's, collector's and front end's counters by exposition name, labels
    included (only those the server has)."""
    counts: dict[str, float] = {}
    if connections is not None:
        for reason, count in connections.counts().items():
            counts[f'modelport_http_slow_clients_closed_total{{reason="{reason}"}}'] = count
        counts["modelport_http_connections_refused_total"] = connections.refused
    if request_log is not None:
        counts["modelport_request_log_dropped_total"] = request_log.dropped
    if collector is not None:
        counts["modelport_collection_records_total"] = collector.written
        counts["modelport_collection_dropped_total"] = collector.dropped
    return counts


def _labels(stats: ModelStats, **extra: str) -> str:
    pairs = {"model": stats.name, "version": stats.version, **extra}
    return ",".join(f'{key}="{_escape(value)}"' for key, value in pairs.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(
    all_stats: Iterable[ModelStats],
    observed: Mapping[str, float] | None = None,
    workers: Sequence[Mapping[str, float]] = (),
    script: Mapping[str, Any] | None = None,
) -> bytes:
    """The full exposition: one sample per model version and family, the observation counters,
    per-worker CPU and memory when several processes serve, the scoring script's metrics
    (``Registry.exposed``), then this process's own metrics."""
    all_stats = list(all_stats)
    lines: list[str] = []
    for name, help_text, value in _COUNTERS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        lines += [f"{name}{{{_labels(s)}}} {value(s)}" for s in all_stats]
    lines += [
        "# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes",
        "# TYPE nv_inference_request_failure counter",
    ]
    for stats in all_stats:
        for reason in FailureReason:
            count = stats.failures_by_reason.get(reason, 0)
            lines.append(f"nv_inference_request_failure{{{_labels(stats, reason=reason)}}} {count}")
    lines += [
        "# HELP nv_inference_pending_request_count Instantaneous number of pending requests awaiting "
        "execution per-model.",
        "# TYPE nv_inference_pending_request_count gauge",
    ]
    lines += [f"nv_inference_pending_request_count{{{_labels(s)}}} {s.pending}" for s in all_stats]
    for name, help_text, histogram in _HISTOGRAMS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        for stats in all_stats:
            lines += _histogram_lines(name, stats, histogram(stats))
    for name, help_text in OBSERVED:
        samples = [key for key in observed or () if key.partition("{")[0] == name]
        if samples and observed is not None:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            lines += [f"{key} {observed[key]}" for key in samples]
    for name, kind, help_text, key in WORKER_GAUGES if workers else ():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f'{name}{{worker="{index}"}} {worker[key]}' for index, worker in enumerate(workers)]
    if script is not None:
        lines += _script_lines(script)
    return ("\n".join(lines) + "\n").encode() + generate_latest(_process)


def _histogram_lines(name: str, stats: ModelStats, histogram: Histogram) -> list[str]:
    lines = [f"{name}_bucket{{{_labels(stats, le=le)}}} {count}" for le, count in histogram.cumulative()]
    total = sum(histogram.counts)
    return [*lines, f"{name}_sum{{{_labels(stats)}}} {histogram.total!r}", f"{name}_count{{{_labels(stats)}}} {total}"]


def _script_lines(script: Mapping[str, Any]) -> list[str]:
    """The script's families: the server's labels, then the script's own, on every sample."""
    lines: list[str] = []
    server = script["labels"]
    for family in script["families"]:
        name, kind = family["name"], Kind(family["kind"])
        lines += [
            f"# HELP {name} {_escape_help(family['help'] or 'Defined by the scoring script')}",
            f"# TYPE {name} {kind.value}",
        ]
        for values, cell in family["series"]:
            pairs = {**server, **dict(zip(family["labels"], values))}
            if kind is not Kind.HISTOGRAM:
                lines.append(f"{name}{{{_pairs(pairs)}}} {cell[0]!r}")
                continue
            total = 0.0
            for bound, count in zip([*map(repr, family["buckets"]), "+Inf"], cell):
                total += count
                lines.append(f"{name}_bucket{{{_pairs({**pairs, 'le': bound})}}} {total!r}")
            lines += [f"{name}_sum{{{_pairs(pairs)}}} {cell[-1]!r}", f"{name}_count{{{_pairs(pairs)}}} {total!r}"]
    return lines


def _pairs(pairs: Mapping[str, str]) -> str:
    return ",".join(f'{key}="{_escape(value)}"' for key, value in pairs.items())


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
