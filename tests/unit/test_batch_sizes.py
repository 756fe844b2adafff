"""Batch sizes from the replicas' own metrics: the histogram's sum and count read from each
replica's exposition, differences over the window added up per deployment, a restarted replica
counted from zero, and a scoring script (no histogram) left out."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import httpx

from modelport.control.batch_sizes import BatchSizes, parse

EXPOSITION = """# HELP modelport_inference_batch_size Rows per model execution (requests batched together add up)
# TYPE modelport_inference_batch_size histogram
modelport_inference_batch_size_bucket{{model="a",version="1",le="1.0"}} 0
modelport_inference_batch_size_bucket{{model="a",version="1",le="+Inf"}} {a_count}
modelport_inference_batch_size_sum{{model="a",version="1"}} {a_sum}
modelport_inference_batch_size_count{{model="a",version="1"}} {a_count}
modelport_inference_batch_size_sum{{model="b",version="2"}} {b_sum}
modelport_inference_batch_size_count{{model="b",version="2"}} {b_count}
nv_inference_count{{model="a",version="1"}} 7
"""


def exposition(a: tuple[int, int], b: tuple[int, int] = (0, 0)) -> str:
    """``a``, ``b``: (rows, executions) of two models."""
    return EXPOSITION.format(a_sum=a[0], a_count=a[1], b_sum=b[0], b_count=b[1])


def test_parse_adds_up_the_models_and_finds_none_in_a_script() -> None:
    assert parse(exposition((8, 4), (3, 1))) == (11.0, 5.0)
    assert parse('nv_inference_count{model="a",version="1"} 7\n') is None


class Replicas:
    """Replicas by (endpoint, deployment) as the supervisor holds them, serving set expositions."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.groups: dict[tuple[str, str], Any] = {}

    def put(self, endpoint: str, deployment: str, pid: int, page: str) -> None:
        url = f"http://r{pid}"
        self.pages[url] = page
        replicas = [r for r in self.groups.get((endpoint, deployment), SimpleNamespace(r=[])).r if r.pid != pid]
        replicas.append(SimpleNamespace(url=url, pid=pid))
        self.groups[(endpoint, deployment)] = SimpleNamespace(r=replicas, serving=lambda r=replicas: r)

    def drop(self, endpoint: str, deployment: str, pid: int) -> None:
        group = self.groups[(endpoint, deployment)]
        group.r[:] = [r for r in group.r if r.pid != pid]

    def answer(self, request: httpx.Request) -> httpx.Response:
        page = self.pages.get(f"http://{request.url.host}")
        return httpx.Response(200, text=page) if page is not None else httpx.Response(404)


def test_mean_batch_size_over_the_window_per_deployment() -> None:
    async def scenario() -> None:
        replicas = Replicas()
        async with httpx.AsyncClient(transport=httpx.MockTransport(replicas.answer)) as client:
            sizes = BatchSizes(replicas, client)  # type: ignore[arg-type]
            replicas.put("bg", "blue", 1, exposition((10, 10)))
            replicas.put("bg", "green", 3, 'nv_inference_count{model="s",version="1"} 1\n')  # a script
            replicas.put("other", "blue", 4, exposition((100, 1)))
            await sizes.sample()
            replicas.put("bg", "blue", 1, exposition((10 + 40, 10 + 10)))  # 10 more runs of 4 rows
            replicas.put("bg", "blue", 2, exposition((6, 2)))  # a second replica, new in the window
            view = await sizes.view("bg")
            assert set(view) == {"blue"}
            blue = view["blue"]
            # the daemon is younger than the window: everything since the replicas started
            assert (blue.executions, blue.rows, blue.mean) == (22, 56, 56 / 22)
            assert [point[1] for point in blue.series] == [1.0, 46 / 12]  # each step since the one before

            await sizes.sample()
            replicas.drop("bg", "blue", 2)
            replicas.put("bg", "blue", 1, exposition((8, 2)))  # restarted under the same pid: counters went down
            replicas.put("bg", "blue", 5, exposition((3, 1)))  # and replica 2 replaced by a new process
            blue = (await sizes.view("bg"))["blue"]
            assert (blue.executions, blue.rows) == (2 + 1, 8 + 3)  # only what the processes running now did
            assert [point[1] for point in blue.series] == [1.0, 46 / 12, 11 / 3]

    asyncio.run(scenario())


def test_the_window_keeps_one_sample_at_its_start() -> None:
    async def scenario() -> None:
        replicas = Replicas()
        async with httpx.AsyncClient(transport=httpx.MockTransport(replicas.answer)) as client:
            sizes = BatchSizes(replicas, client, window_s=0.0)  # type: ignore[arg-type]
            replicas.put("bg", "blue", 1, exposition((4, 2)))
            await sizes.sample()
            await sizes.sample()
            assert len(sizes.samples) == 1
            assert (await sizes.view("bg"))["blue"].executions == 0  # all of it before the window

    asyncio.run(scenario())
