"""The dynamic batcher with a fake model: batch formation, limits, errors, adaptive policy."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from modelport.runtime.config import DynamicBatching
from modelport.serving.batching import CostModel, DynamicBatcher, QueueRejected

pytestmark = pytest.mark.serial  # timing assertions: run alone, after the parallel part (scripts/test.sh)


class FakeModel:
    """Doubles its input after ``delay`` seconds and remembers every batch size it ran."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay, self.fail, self.batches = delay, fail, []

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.batches.append(len(inputs["x"]))
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("model exploded")
        return {"y": inputs["x"] * 2}


def _request(value: float, rows: int = 1, width: int = 3) -> dict[str, np.ndarray]:
    return {"x": np.full((rows, width), value, dtype=np.float32)}


async def _run_all(batcher: DynamicBatcher, requests: list[dict[str, np.ndarray]]) -> list:
    return await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)


def test_concurrent_requests_share_batches_and_get_their_own_rows() -> None:
    model = FakeModel(delay=0.01)
    batcher = DynamicBatcher(DynamicBatching(max_queue_delay_microseconds=20_000), 8, 1, model)
    results = asyncio.run(_run_all(batcher, [_request(i) for i in range(20)]))
    assert all(np.array_equal(r.outputs["y"], np.full((1, 3), 2 * i)) for i, r in enumerate(results))
    assert sum(model.batches) == 20 and len(model.batches) < 20 and max(model.batches) <= 8


def test_preferred_size_goes_out_without_waiting_for_the_delay() -> None:
    model = FakeModel()
    batcher = DynamicBatcher(
        DynamicBatching(preferred_batch_size=(4,), max_queue_delay_microseconds=5_000_000), 8, 1, model
    )

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await _run_all(batcher, [_request(i) for i in range(4)])
        return loop.time() - start

    assert asyncio.run(scenario()) < 1.0
    assert model.batches == [4]


def test_requests_with_other_shapes_are_not_concatenated() -> None:
    model = FakeModel(delay=0.01)
    batcher = DynamicBatcher(DynamicBatching(max_queue_delay_microseconds=10_000), 8, 1, model)
    requests = [_request(1, width=3), _request(2, width=5), _request(3, width=3), _request(4, rows=2, width=5)]
    results = asyncio.run(_run_all(batcher, requests))
    assert [r.outputs["y"].shape for r in results] == [(1, 3), (1, 5), (1, 3), (2, 5)]
    assert sum(model.batches) == 5


def test_full_queue_is_rejected_at_once() -> None:
    model = FakeModel(delay=0.05)
    batcher = DynamicBatcher(DynamicBatching(max_queue_size=2), 1, 1, model)
    results = asyncio.run(_run_all(batcher, [_request(i) for i in range(6)]))
    rejected = [r for r in results if isinstance(r, QueueRejected)]
    assert rejected and all("maximum queue size" in str(r) for r in rejected)
    assert len(model.batches) + len(rejected) == 6


def test_requests_waiting_past_their_timeout_get_503() -> None:
    model = FakeModel(delay=0.05)
    batcher = DynamicBatcher(DynamicBatching(default_timeout_microseconds=20_000), 1, 1, model)
    results = asyncio.run(_run_all(batcher, [_request(i) for i in range(5)]))
    expired = [r for r in results if isinstance(r, QueueRejected)]
    assert expired and all("timeout" in str(r) for r in expired)
    assert QueueRejected.http_status == 503


def test_a_failing_batch_fails_each_caller_and_the_batcher_goes_on() -> None:
    model = FakeModel(fail=True)
    batcher = DynamicBatcher(DynamicBatching(max_queue_delay_microseconds=10_000), 8, 1, model)

    async def scenario() -> tuple[list, object]:
        failed = await _run_all(batcher, [_request(i) for i in range(3)])
        model.fail = False
        return failed, await batcher.submit(_request(7))

    failed, ok = asyncio.run(scenario())
    assert all(isinstance(r, RuntimeError) for r in failed)
    assert np.array_equal(ok.outputs["y"], np.full((1, 3), 14))


def test_preserve_ordering_completes_in_arrival_order() -> None:
    finished: list[float] = []

    def uneven(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(0.05 if inputs["x"][0, 0] == 0 else 0.0)  # the first batch is the slowest
        return {"y": inputs["x"]}

    settings = DynamicBatching(preserve_ordering=True)
    batcher = DynamicBatcher(settings, 1, 2, uneven)

    async def scenario() -> None:
        async def one(i: int) -> None:
            await batcher.submit(_request(i))
            finished.append(i)

        await asyncio.gather(*(one(i) for i in range(4)))

    asyncio.run(scenario())
    assert finished == [0, 1, 2, 3]


def test_cost_model_learns_a_linear_cost() -> None:
    cost = CostModel()
    for rows in (1, 2, 4, 8, 16, 32) * 5:
        cost.observe(rows, 0.001 + 0.0005 * rows)
    assert cost.predict(64) == pytest.approx(0.001 + 0.0005 * 64, rel=0.05)


def test_adaptive_mode_batches_more_under_load_and_stays_in_budget() -> None:
    def costly(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(0.002 + 0.0002 * len(inputs["x"]))
        return {"y": inputs["x"]}

    sizes: list[int] = []
    batcher = DynamicBatcher(
        DynamicBatching(latency_budget_ms=50), 32, 1, costly, on_batch=lambda rows, seconds: sizes.append(rows)
    )

    async def scenario() -> list:
        results = []
        for _ in range(5):  # waves of 32 concurrent callers
            results += await _run_all(batcher, [_request(i) for i in range(32)])
        return results

    results = asyncio.run(scenario())
    latencies = [r.queued + r.executed for r in results]
    assert max(latencies) < 0.05 * 1.5
    assert sum(sizes) == 160 and len(sizes) < 40  # batched, not one run per request
    assert batcher.cost.predict(32) > batcher.cost.predict(1)


def test_adaptive_mode_never_waits_for_rows_that_are_not_coming() -> None:
    def quick(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(0.001)
        return {"y": inputs["x"]}

    # a 400 ms budget allows batches of 32; only 4 callers are in flight, so a batch of 32 never
    # fills: each batch must go as soon as the instance is free, not after half the budget
    batcher = DynamicBatcher(DynamicBatching(latency_budget_ms=400), 32, 1, quick)

    async def scenario() -> list:
        results = []
        for _ in range(10):
            results += await _run_all(batcher, [_request(i) for i in range(4)])
        return results

    assert max(r.queued for r in asyncio.run(scenario())) < 0.1


def test_adaptive_batches_take_a_share_of_the_requests_in_flight() -> None:
    model = FakeModel(delay=0.005)
    # 8 requests in flight, one instance: batches of at most 4, so the front end has the other half
    batcher = DynamicBatcher(DynamicBatching(latency_budget_ms=1000), 32, 1, model, in_flight=lambda: 8)
    asyncio.run(_run_all(batcher, [_request(i) for i in range(8)]))
    assert sum(model.batches) == 8 and max(model.batches) <= 4
