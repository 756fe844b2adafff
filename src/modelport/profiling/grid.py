"""The server settings a trial runs with, and the batching grid of phase 2.

A :class:`Settings` is the part of a model config the profiler tunes (Triton's
``max_batch_size``, ``dynamic_batching.max_queue_delay_microseconds``, ``instance_group`` count);
``model_config()`` renders it as the overrides ``serve --model-config`` and a deployment's
``model_config`` lay over the model's own config, so what is measured is exactly what is applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modelport.runtime.config import ModelConfig


@dataclass(frozen=True)
class Settings:
    """``max_queue_delay_us`` None means no dynamic batching: each request runs on its own.
    ``max_batch_size`` 0 is a model that does not batch at all (then only instances vary)."""

    instance_count: int
    max_batch_size: int
    max_queue_delay_us: int | None

    @property
    def batching(self) -> bool:
        return self.max_queue_delay_us is not None

    def model_config(self, base: ModelConfig | None = None) -> dict[str, Any]:
        """The overrides that serve these settings over ``base``, the model's own config (with a
        deployment's ``model_config``): the ``modelConfig`` of the profile document.

        Overrides merge into ``base``, where ``dynamic_batching`` cannot be removed: when ``base``
        batches, its ``preferred_batch_size`` is reset (a preferred size above a smaller
        ``max_batch_size`` is invalid, and preferred sizes would skew the tuned batches) and "no
        batching" is a batcher whose batch holds one request. The instance group keeps ``base``'s
        kind and threads: only the count is tuned."""
        base_batches = base is not None and base.dynamic_batching is not None
        config: dict[str, Any] = {}
        if self.max_batch_size > 0:
            config["max_batch_size"] = self.max_batch_size
        if self.batching or (base_batches and self.max_batch_size > 0):
            config["dynamic_batching"] = {"max_queue_delay_microseconds": self.max_queue_delay_us or 0}
            if base_batches:
                config["dynamic_batching"]["preferred_batch_size"] = []
        group = base.instance_group[0].to_dict() if base is not None else {}
        kept = {key: value for key, value in group.items() if key != "count" and (key, value) != ("kind", "KIND_CPU")}
        config["instance_group"] = [{"count": self.instance_count, **kept}]
        return config

    def cost(self) -> tuple[int, int, int]:
        """What these settings cost, for preferring the cheaper of two that serve as well: every
        instance is another copy of the model in memory, a larger batch and a longer queue delay
        make a lone request wait longer."""
        return (self.instance_count, self.max_batch_size, self.max_queue_delay_us or 0)

    def label(self) -> str:
        batching = (
            f"batch ≤{self.max_batch_size}, delay {self.max_queue_delay_us} µs"
            if self.batching
            else (f"no batching (≤{self.max_batch_size})" if self.max_batch_size else "no batch dim")
        )
        return f"{batching}, {self.instance_count} inst."


def settings_of(config: Mapping[str, Any]) -> Settings:
    """The settings a server runs with, read from its completed config (``GET /v2/models/m/config``)."""
    batching = config.get("dynamic_batching")
    delay = int(batching.get("max_queue_delay_microseconds", 0)) if isinstance(batching, Mapping) else None
    groups = config.get("instance_group") or [{"count": 1}]
    count = sum(int(group.get("count", 1)) for group in groups) or 1
    max_batch_size = int(config.get("max_batch_size", 0))
    return Settings(count, max_batch_size, delay if max_batch_size > 0 else None)


def batching_grid(
    base: Settings, concurrency: int, rows: int, sizes: Iterable[int], delays: Iterable[int], counts: Iterable[int]
) -> list[Settings]:
    """Phase 2's settings, pruned: a batch never holds more than ``concurrency × rows`` rows (the
    requests in flight), so a larger ``max_batch_size`` behaves like that one and is tried as it;
    a size at or below one request's ``rows`` cannot combine requests, so it is tried once,
    without dynamic batching (the queue delay means nothing then); a model that does not batch
    (``base.max_batch_size == 0``) only varies its instances. ``base`` itself is left out: phase 1
    measured it."""
    counts = sorted(set(counts))
    if base.max_batch_size == 0:
        grid = [Settings(count, 0, None) for count in counts]
    else:
        ceiling = concurrency * rows
        grid = []
        for size in sorted({min(max(size, rows), ceiling) for size in sizes}):
            for count in counts:
                if size <= rows:
                    grid.append(Settings(count, size, None))
                else:
                    grid += [Settings(count, size, delay) for delay in sorted(set(delays))]
    return [settings for settings in dict.fromkeys(grid) if settings != base]
