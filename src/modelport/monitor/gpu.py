"""GPU utilisation and memory through NVML, under Triton's metric names.

A prometheus-client collector that reports every NVIDIA GPU the process can see
(``nv_gpu_utilization`` 0–1, ``nv_gpu_memory_total_bytes``, ``nv_gpu_memory_used_bytes``,
``nv_gpu_power_usage`` watts, labelled ``gpu_uuid``). NVML (the ``nvidia-ml-py`` package, extra
``gpu``) is tried once, on the first scrape: without the package, the driver or a GPU the
collector reports nothing, so an absent GPU means absent GPU metrics, never an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("modelport.monitor")


class GpuCollector(Collector):
    def __init__(self) -> None:
        self._nvml: Any = None
        self._tried = False

    def collect(self) -> Iterator[GaugeMetricFamily]:
        nvml = self._load()
        if nvml is None:
            return
        families = {
            "util": GaugeMetricFamily("nv_gpu_utilization", "GPU utilization rate [0.0 - 1.0)", labels=["gpu_uuid"]),
            "total": GaugeMetricFamily("nv_gpu_memory_total_bytes", "GPU total memory, in bytes", labels=["gpu_uuid"]),
            "used": GaugeMetricFamily("nv_gpu_memory_used_bytes", "GPU used memory, in bytes", labels=["gpu_uuid"]),
            "power": GaugeMetricFamily("nv_gpu_power_usage", "GPU power usage in watts", labels=["gpu_uuid"]),
        }
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                uuid = nvml.nvmlDeviceGetUUID(handle)
                uuid = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                families["util"].add_metric([uuid], nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0)
                families["total"].add_metric([uuid], float(memory.total))
                families["used"].add_metric([uuid], float(memory.used))
                families["power"].add_metric([uuid], nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0)
        except Exception as exc:  # a GPU that vanished or a driver error: skip this scrape
            log.warning("NVML query failed: %s", exc)
            return
        yield from families.values()

    def _load(self) -> Any:
        if not self._tried:
            self._tried = True
            try:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml
            except Exception:  # no package, no driver, no GPU
                self._nvml = None
        return self._nvml
