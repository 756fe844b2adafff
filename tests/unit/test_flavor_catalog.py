"""The flavor catalog: built-ins as pyproject.toml lists them, Triton names and defaults per flavor,
and outside flavors from entry points (a broken one left out, the others kept)."""

from __future__ import annotations

import logging
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from modelport.registry.flavors import FLAVORS
from modelport.runtime import flavor_catalog
from modelport.runtime.config import DEFAULT_MAX_BATCH_SIZE, TABULAR_MAX_BATCH_SIZE, ModelConfig
from modelport.runtime.flavor_contract import Flavor

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the test extra's Python is 3.11+
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]


def test_builtin_table_is_what_pyproject_registers() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"][flavor_catalog.ENTRY_POINT_GROUP] == flavor_catalog.BUILTIN
    assert FLAVORS == tuple(flavor_catalog.BUILTIN)


def test_every_builtin_is_a_flavor_of_its_name() -> None:
    for name in flavor_catalog.BUILTIN:
        flavor = flavor_catalog.get(name)
        assert isinstance(flavor, Flavor) and flavor.name == name
    assert flavor_catalog.loadable_names()[:6] == ("onnx", "sklearn", "torch", "xgboost", "lightgbm", "mlflow")


def test_the_cli_help_names_every_builtin() -> None:
    from modelport.cli.model import register

    flavor_help = next(p.help for p in register.params if p.name == "flavor")
    assert flavor_help.startswith(", ".join(flavor_catalog.BUILTIN) + ",")


@pytest.mark.parametrize(
    ("config", "flavor", "platform", "backend"),
    [
        ({"platform": "onnxruntime_onnx"}, "onnx", "onnxruntime_onnx", None),
        ({"backend": "onnxruntime"}, "onnx", None, "onnxruntime"),
        ({"platform": "pytorch_libtorch"}, "torch", "pytorch_libtorch", None),
        ({"backend": "fil", "parameters": {"model_type": "xgboost_ubj"}}, "xgboost", None, "fil"),
        ({"backend": "fil", "parameters": {"model_type": "lightgbm"}}, "lightgbm", None, "fil"),
        ({"backend": "fil", "parameters": {"model_type": "treelite"}}, None, None, "fil"),
        ({"backend": "sklearn"}, "sklearn", None, "sklearn"),
        ({"backend": "tensorflow"}, "tensorflow", None, "tensorflow"),  # an unknown backend names itself
        ({"flavor": "onnx"}, "onnx", "onnxruntime_onnx", "onnxruntime"),
        ({"flavor": "torch"}, "torch", "pytorch_libtorch", "pytorch"),
        ({"flavor": "lightgbm"}, "lightgbm", None, "lightgbm"),
        ({"flavor": "keras"}, "keras", None, "keras"),
    ],
)
def test_triton_names_come_from_the_flavor(config: dict, flavor: str, platform: str, backend: str) -> None:
    made = ModelConfig(name="m", **config)
    assert (made.flavor, made.platform, made.backend) == (flavor, platform, backend)


def test_defaults_come_from_the_flavor() -> None:
    assert [flavor_catalog.default_max_batch_size(n) for n in ("sklearn", "xgboost", "lightgbm")] == [
        TABULAR_MAX_BATCH_SIZE
    ] * 3
    assert flavor_catalog.default_max_batch_size("onnx") is None  # the runtime's DEFAULT_MAX_BATCH_SIZE
    assert DEFAULT_MAX_BATCH_SIZE == 4
    assert [n for n in flavor_catalog.BUILTIN if flavor_catalog.is_tabular(n)] == ["sklearn", "xgboost", "lightgbm"]
    assert flavor_catalog.get("xgboost").extra == "xgboost"


def test_a_loader_that_cannot_be_imported_names_the_extra(tmp_path: Path) -> None:
    flavor = Flavor("ghost", loader="modelport_no_such_module:load", extra="ghost")
    with pytest.raises(Exception, match=r"the ghost flavor cannot be loaded .*pip install 'modelport\[ghost\]'"):
        flavor.load(tmp_path)


def _entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name, value, flavor_catalog.ENTRY_POINT_GROUP)


GOOD = Flavor("linear", formats=frozenset({"linear-json"}))


def test_plugins_are_read_once_and_a_broken_one_is_one_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A plug-in that does not import, one that is no Flavor and one that takes a built-in name are
    each one warning naming the entry point; the good one is registered after the built-ins."""
    entries = [
        _entry("broken", "modelport_no_such_module:FLAVOR"),
        _entry("linear", f"{__name__}:GOOD"),
        _entry("notaflavor", f"{__name__}:ROOT"),
        _entry("onnx", f"{__name__}:GOOD"),
    ]
    calls: list[str] = []

    def entry_points(group: str) -> list[EntryPoint]:
        calls.append(group)
        return entries

    monkeypatch.setattr("importlib.metadata.entry_points", entry_points)
    flavor_catalog._plugins.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger=flavor_catalog.__name__):
            assert flavor_catalog.names()[-2:] == ("custom", "linear")
            assert flavor_catalog.get("linear") is GOOD
            assert flavor_catalog.get("onnx").triton_platform == "onnxruntime_onnx"
    finally:
        flavor_catalog._plugins.cache_clear()
    assert calls == [flavor_catalog.ENTRY_POINT_GROUP]
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3
    assert lines[0].startswith("flavor plug-in broken = modelport_no_such_module:FLAVOR (?) cannot be loaded: ")
    assert "ModuleNotFoundError" in lines[0]
    assert lines[1].startswith("flavor plug-in notaflavor = ")
    assert lines[2].startswith("flavor plug-in onnx = ") and "already registered" in lines[2]


def test_a_builtin_lookup_reads_no_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    def entry_points(group: str) -> list[EntryPoint]:
        raise AssertionError("entry points read for a built-in flavor")

    monkeypatch.setattr("importlib.metadata.entry_points", entry_points)
    flavor_catalog._plugins.cache_clear()
    try:
        assert ModelConfig(name="m", flavor="sklearn").backend == "sklearn"
        assert ModelConfig(name="m", platform="onnxruntime_onnx").flavor == "onnx"
        assert flavor_catalog.default_max_batch_size("lightgbm") == TABULAR_MAX_BATCH_SIZE
    finally:
        flavor_catalog._plugins.cache_clear()
