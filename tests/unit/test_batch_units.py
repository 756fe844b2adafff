"""Batch building blocks in-process: definitions, input plans and readers, output parts, the
no-code feature mapping, the script check, and the engine's retry/split/threshold rules."""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelport.batch.definitions import BatchSettings, parse_deployment, parse_endpoint
from modelport.batch.engine import JobFailed, LocalEngine, MiniBatchResult
from modelport.batch.inputs import iter_tables, resolve_input
from modelport.batch.jobs import _steady_rate
from modelport.batch.output import Assembly, part_name, write_part
from modelport.batch.scoring import check_script, model_inputs
from modelport.batch.worker import WorkerConfig
from modelport.core.errors import ConflictError, DiskError, ValidationError
from modelport.core.overrides import read_definition
from modelport.runtime.predictor import TensorMeta
from modelport.schema.batch import BatchInlineEnvironment

# -- definitions ---------------------------------------------------------------------------------


def _deployment(tmp_path: Path, **extra: object) -> dict[str, object]:
    (tmp_path / "code").mkdir(exist_ok=True)
    (tmp_path / "code" / "score.py").write_text("def init():\n    pass\n\ndef run(b):\n    return b\n")
    return {
        "name": "d",
        "endpoint_name": "e",
        "model": "m:1",
        "code_configuration": {"code": "code", "scoring_script": "score.py"},
        **extra,
    }


def test_deployment_defaults_are_azures(tmp_path: Path) -> None:
    settings = parse_deployment(_deployment(tmp_path), tmp_path).value.batch_settings
    assert settings == BatchSettings()
    assert (
        settings.mini_batch_size,
        settings.max_retries,
        settings.timeout,
        settings.error_threshold,
        settings.output_action,
        settings.output_file_name,
        settings.workers,
    ) == (10, 3, 30.0, -1, "append_row", "predictions.csv", 1)


def test_settings_at_root_or_under_settings(tmp_path: Path) -> None:
    root = parse_deployment(_deployment(tmp_path, mini_batch_size=5, retry_settings={"max_retries": 1}), tmp_path)
    nested = parse_deployment(
        _deployment(tmp_path, settings={"mini_batch_size": 5, "retry_settings": {"max_retries": 1}}), tmp_path
    )
    assert root.value.batch_settings == nested.value.batch_settings
    assert (root.value.batch_settings.mini_batch_size, root.value.batch_settings.max_retries) == (5, 1)
    with pytest.raises(ValidationError, match="settings.mini_batch_size: given both"):
        parse_deployment(_deployment(tmp_path, mini_batch_size=5, settings={"mini_batch_size": 6}), tmp_path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"settings": {"mini_batch_size": -3}}, "settings.mini_batch_size: -3 is less than 1"),
        (
            {"settings": {"mini_batch_sise": 3}},
            "settings.mini_batch_sise: unknown key; did you mean 'mini_batch_size'?",
        ),
        ({"resources": {"instance_count": 0}}, "resources.instance_count: 0 is less than 1"),
        (
            {"settings": {"retry_settings": {"timeout": "x"}}},
            "settings.retry_settings.timeout: expected a number, got 'x'",
        ),
        ({"settings": {"error_threshold": -2}}, "settings.error_threshold: -2 is less than -1"),
        ({"settings": {"output_action": "append"}}, "settings.output_action: 'append' is not one of"),
        ({"settings": {"output_file_name": "a/b.csv"}}, "must be a file name"),
        ({"type": "pipeline"}, "type: 'pipeline' deployments are not supported"),
        ({"resources": {"gpus": 1}}, "resources.gpus: unknown key"),
        ({"models": ["small:1"]}, "models: the models a scoring script calls are loaded for online deployments only"),
    ],
)
def test_bad_deployment_fields_are_named(tmp_path: Path, extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        parse_deployment(_deployment(tmp_path, **extra), tmp_path)


def test_cloud_only_keys_are_listed_as_ignored(tmp_path: Path) -> None:
    definition = parse_deployment(
        _deployment(
            tmp_path,
            compute="azureml:cpu",
            **{"$schema": "x"},
            environment={"name": "env", "image": "mcr/x"},
            resources={"instance_count": 2, "instance_type": "Standard_DS3"},
        ),
        tmp_path,
    )
    assert set(definition.ignored) == {"compute", "environment.image", "resources.instance_type"}
    assert definition.value.environment == BatchInlineEnvironment(name="env")
    assert definition.value.batch_settings.instance_count == 2
    assert parse_endpoint({"name": "e", "auth_mode": "aad_token"}).ignored == ("auth_mode",)


def test_missing_code_paths_are_named(tmp_path: Path) -> None:
    data = _deployment(tmp_path)
    data["code_configuration"] = {"code": "code", "scoring_script": "nope.py"}
    with pytest.raises(ValidationError, match="code_configuration.scoring_script: .*nope.py does not exist"):
        parse_deployment(data, tmp_path)


def test_set_overrides_apply_dotted_paths(tmp_path: Path) -> None:
    file = tmp_path / "d.yml"
    file.write_text("name: d\nsettings:\n  mini_batch_size: 4\n")
    data, base = read_definition(file, ["settings.mini_batch_size=7", "settings.retry_settings.timeout=2.5"], "x")
    assert data == {"name": "x", "settings": {"mini_batch_size": 7, "retry_settings": {"timeout": 2.5}}}
    assert base == tmp_path


def test_job_overrides_are_checked() -> None:
    settings = BatchSettings().override({"mini_batch_size": "3", "timeout": "1.5", "error_threshold": "-1"})
    assert (settings.mini_batch_size, settings.timeout, settings.error_threshold) == (3, 1.5, -1)
    with pytest.raises(ValidationError, match="--set batch_size: not a batch setting"):
        BatchSettings().override({"batch_size": "3"})
    with pytest.raises(ValidationError, match="--set mini_batch_size: 0 is less than 1"):
        BatchSettings().override({"mini_batch_size": "0"})


def test_check_script_needs_run(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("def init():\n    pass\n")
    with pytest.raises(ValidationError, match="defines no run"):
        check_script(script)
    script.write_text("from helpers import run\n")
    check_script(script)
    script.write_text("def run(:\n")
    with pytest.raises(ValidationError, match="line 1"):
        check_script(script)


# -- inputs --------------------------------------------------------------------------------------


def test_folder_plan_is_sorted_and_cut(tmp_path: Path) -> None:
    for name in ["b.png", "a.png", "sub/c.png", ".hidden"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    plan = resolve_input(str(tmp_path), None)
    assert plan.kind == "files" and plan.names == ["a.png", "b.png", "sub/c.png"]
    assert plan.minibatches(2) == [(0, 2), (2, 3)]
    assert plan.describe(1, 3) == ["b.png", "sub/c.png"]
    assert resolve_input(str(tmp_path / "*.png"), None).names == ["a.png", "b.png"]
    with pytest.raises(ValidationError, match="matches no files"):
        resolve_input(str(tmp_path / "*.jpg"), None)
    with pytest.raises(ValidationError, match="not a single file"):
        resolve_input(str(tmp_path), "uri_file")


def test_tables_are_cut_across_files_in_order(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": np.arange(0, 7)}), tmp_path / "a.parquet", row_group_size=3)
    (tmp_path / "b.csv").write_text("x\n" + "".join(f"{i}\n" for i in range(7, 12)))
    (tmp_path / "c.jsonl").write_text("".join(f'{{"x": {i}}}\n' for i in range(12, 15)))
    plan = resolve_input(str(tmp_path), "tabular")
    assert plan.rows == [7, 5, 3] and plan.total == 15
    tables = dict(iter_tables(plan, 4, {0, 1, 2, 3}))
    assert [tables[i].column("x").to_pylist() for i in range(4)] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9, 10, 11],
        [12, 13, 14],
    ]
    assert list(dict(iter_tables(plan, 4, {2}))) == [2]
    assert plan.describe(6, 8) == ["a.parquet:6", "b.csv:0"]


def test_unreadable_tables_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really PAR1")
    with pytest.raises(ValidationError, match="bad.parquet is not a readable Parquet file"):
        resolve_input(str(tmp_path / "bad.parquet"), "tabular")
    (tmp_path / "x.txt").write_text("1\n")
    with pytest.raises(ValidationError, match="x.txt is not CSV, Parquet or JSONL"):
        resolve_input(str(tmp_path / "x.txt"), "tabular")


# -- output --------------------------------------------------------------------------------------


def test_csv_parts_follow_azures_append_row_format(tmp_path: Path) -> None:
    import pandas as pd

    parts = tmp_path / "parts"
    parts.mkdir()
    write_part(pd.DataFrame({"file": ["b.png"], "p": [0.5]}), parts / part_name(10, ".csv"))
    write_part(["a.png 1", {"k": 2}], parts / part_name(0, ".csv"))
    output = tmp_path / "out" / "predictions.csv"
    Assembly(parts, output, {0: [0], 1: [10]}, ".csv").finish(overwrite=False)
    assert output.read_text() == "a.png 1\n{'k': 2}\nb.png 0.5\n"
    with pytest.raises(ConflictError, match="already exists"):
        Assembly(parts, output, {0: [0], 1: [10]}, ".csv").finish(overwrite=False)
    Assembly(parts, output, {0: [0], 1: [10]}, ".csv").finish(overwrite=True)
    assert output.read_text() == "a.png 1\n{'k': 2}\nb.png 0.5\n"


def test_parquet_output_keeps_columns_and_order(tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    write_part(pa.table({"p": [3.0, 4.0]}), parts / part_name(2, ".arrow"))
    write_part(pa.table({"p": [1.0, 2.0]}), parts / part_name(0, ".arrow"))
    output = tmp_path / "p.parquet"
    assembly = Assembly(parts, output, {}, ".arrow")
    assembly.add(1, [2])  # finished out of order: joined once mini-batch 0 is in
    assert not assembly.temporary.exists()
    assembly.add(0, [0])
    assembly.finish(overwrite=False)
    assert pq.read_table(output).column("p").to_pylist() == [1.0, 2.0, 3.0, 4.0]
    assert sorted(p.name for p in parts.iterdir()) == [part_name(0, ".arrow"), part_name(2, ".arrow")]


def test_a_failed_join_fails_the_job_in_one_line_without_waiting(tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    write_part(pa.table({"p": [1.0]}), parts / part_name(0, ".arrow"))
    output = tmp_path / "p.parquet"
    assembly = Assembly(parts, output, {}, ".arrow")
    assembly.add(0, [0])
    assembly.add(1, [1])  # its part is gone: the joining thread cannot go on
    with pytest.raises(DiskError, match=r"^output: joining the parts failed \(FileNotFoundError") as caught:
        for index in range(2, 1000):  # more than the queue holds: add() never waits on a stopped thread
            assembly.add(index, [index])
    assert "\n" not in str(caught.value)
    with pytest.raises(DiskError, match="joining the parts failed"):
        assembly.finish(overwrite=False)
    assert not output.exists()


def test_the_cli_sees_its_forked_runner_end_at_once(tmp_path: Path) -> None:
    from modelport import Workspace
    from modelport.batch.forked import ForkedRunner

    with Workspace(tmp_path / "ws") as ws:
        runner = ForkedRunner(ws)
        assert not runner.wait(0.05)  # it waits for its job
        runner.start("batchjob-missing", "token", tmp_path / "runner.txt", {})  # a job it cannot claim: it exits
        began = time.monotonic()
        assert runner.wait(60)
        assert time.monotonic() - began < 30
        assert runner.wait(0)
    assert (tmp_path / "runner.txt").exists()  # it had the job


# -- no-code features ------------------------------------------------------------------------------


def test_model_inputs_from_columns() -> None:
    table = pa.table({"a": [1.0, 2.0], "b": [3, 4]})
    features = model_inputs(table, [TensorMeta("input", "FP32", (-1, 2))])
    np.testing.assert_array_equal(features["input"], np.array([[1, 3], [2, 4]], dtype=np.float32))
    named = model_inputs(table, [TensorMeta("b", "INT64", (-1, 1)), TensorMeta("a", "FP64", (-1,))])
    assert named["b"].shape == (2, 1) and named["a"].dtype == np.float64
    with pytest.raises(ValidationError, match="takes 3 features per row; the table has 2 columns"):
        model_inputs(table, [TensorMeta("input", "FP32", (-1, 3))])


def test_steady_rate_leaves_out_start_up() -> None:
    assert _steady_rate([(100.0, 10)]) is None
    assert _steady_rate([(102.0, 10), (100.0, 10), (104.0, 20)]) == pytest.approx(30 / 4)


# -- engine rules (real worker processes) ------------------------------------------------------------


class _Hooks:
    def __init__(self) -> None:
        self.results: list[MiniBatchResult] = []
        self.errors: list[tuple[list[str], str]] = []

    def finished(self, result: MiniBatchResult) -> None:
        self.results.append(result)

    def tick(self) -> None:
        pass

    def item_errors(self, items: list[str], error: str) -> None:
        self.errors.append((items, error))


def _engine(tmp_path: Path, script: str, files: int, **settings: object) -> tuple[LocalEngine, _Hooks]:
    (tmp_path / "in").mkdir()
    for i in range(files):
        (tmp_path / "in" / f"f{i}.txt").write_text(str(i))
    (tmp_path / "score.py").write_text(textwrap.dedent(script))
    plan = resolve_input(str(tmp_path / "in"), None)
    chosen = BatchSettings().override({k: str(v) for k, v in settings.items()})
    pending = [(i, start, stop) for i, (start, stop) in enumerate(plan.minibatches(chosen.mini_batch_size))]
    config = WorkerConfig(
        script=str(tmp_path / "score.py"),
        flavor=None,
        model_path=None,
        environment={},
        log_dir=str(tmp_path / "logs"),
        logging_level="info",
    )
    (tmp_path / "parts").mkdir()
    hooks = _Hooks()
    return LocalEngine(plan, chosen, pending, config, tmp_path / "parts", ".csv", hooks), hooks


_ONE_BAD = """
    import os
    def run(batch):
        if any(os.path.basename(p) == "f5.txt" for p in batch):
            raise ValueError("f5 is bad")
        return [os.path.basename(p) for p in batch]
"""


def test_failing_minibatch_is_retried_then_split_to_the_bad_item(tmp_path: Path) -> None:
    engine, hooks = _engine(tmp_path, _ONE_BAD, 8, mini_batch_size=8, max_retries=1)
    engine.run()
    (result,) = hooks.results
    # 2 attempts of the whole, then halves [0,4) [4,8), then [4,6) [6,8), then [4,5) [5,6)
    assert (result.succeeded, result.failed, result.attempts) == (7, 1, 8)
    assert hooks.errors == [(["f5.txt"], "ValueError: f5 is bad")]
    parts = sorted(p.name for p in (tmp_path / "parts").iterdir())
    assert "".join((tmp_path / "parts" / p).read_text() for p in parts).split() == [
        f"f{i}.txt" for i in range(8) if i != 5
    ]


def test_error_threshold_stops_the_job(tmp_path: Path) -> None:
    engine, hooks = _engine(tmp_path, _ONE_BAD, 8, mini_batch_size=4, max_retries=0, error_threshold=0)
    with pytest.raises(JobFailed, match="error_threshold 0 exceeded: 1 items failed"):
        engine.run()


def test_short_returns_count_the_gap(tmp_path: Path) -> None:
    engine, hooks = _engine(tmp_path, "def run(batch):\n    return batch[:-1]\n", 6, mini_batch_size=3)
    engine.run()
    assert [(r.succeeded, r.failed, r.attempts) for r in hooks.results] == [(2, 1, 1), (2, 1, 1)]
    assert "run() returned 2 results for 3 inputs" in hooks.errors[0][1]


def test_init_that_keeps_failing_fails_the_job(tmp_path: Path) -> None:
    script = "def init():\n    raise RuntimeError('no model here')\n\ndef run(batch):\n    return batch\n"
    engine, _ = _engine(tmp_path, script, 2, mini_batch_size=1)
    with pytest.raises(JobFailed, match="init\\(\\) failed 3 times; last: RuntimeError: no model here"):
        engine.run()
