"""Building environments into cached virtualenvs, offline.

Two tests create real virtualenvs (one that succeeds and is reused, one whose install fails);
the rest put a fake ``uv`` first on PATH, which records how it is called, to check the uv
commands, the build environment and crash recovery without creating anything.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from modelport.core.errors import BuildError
from modelport.envs.builder import build_env
from modelport.envs.spec import parse_spec

PACKAGE = "mp_envtest_pkg"


def make_wheel(directory: Path, version: str = "0.1") -> Path:
    """A minimal valid pure-Python wheel, so that installing needs no index."""
    dist_info = f"{PACKAGE}-{version}.dist-info"
    files = {
        f"{PACKAGE}/__init__.py": "VALUE = 42\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: modelport-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [f"{name},sha256={_digest(text)},{len(text.encode())}" for name, text in files.items()]
    files[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n"
    wheel = directory / f"{PACKAGE}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def _digest(text: str) -> str:
    raw = hashlib.sha256(text.encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def cache_dirs(cache: Path) -> list[str]:
    return sorted(entry.name for entry in cache.iterdir() if entry.is_dir())


# -- real virtualenvs ---------------------------------------------------------------------------


@pytest.mark.slow
def test_conda_env_builds_once_then_is_reused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    cache = tmp_path / "cache"
    conda_spec = parse_spec(
        textwrap.dedent(
            f"""\
            name: scoring
            channels: [conda-forge]
            dependencies:
              - python
              - numpy=1.26
              - pip
              - pip:
                - {wheel}
            """
        ),
        "conda.yml",
    )

    # Two builders at once: the lock makes the second wait, then reuse the first one's venv.
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: build_env(conda_spec, cache), range(2)))

    assert sorted(result.reused for result in results) == [False, True]
    first = results[0]
    assert first.path == results[1].path == cache / conda_spec.content_hash[:16]
    assert first.conda_only == ("numpy=1.26",)
    assert cache_dirs(cache) == [first.path.name]
    marker = json.loads((first.path / "modelport-env.json").read_text())
    assert marker["content_hash"] == conda_spec.content_hash
    assert marker["pip_requirements"] == [str(wheel)]

    probe = f"import sys, {PACKAGE}; print({PACKAGE}.VALUE, sys.prefix)"
    out = subprocess.run([str(first.python), "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["42", str(first.path)]
    assert importlib.util.find_spec(PACKAGE) is None  # installed in the venv only

    # The same pip requirements from a requirements file are the same build.
    again = build_env(parse_spec(f"{wheel}\n", "requirements.txt"), cache)
    assert again.reused is True
    assert again.path == first.path
    assert again.conda_only == ()


@pytest.mark.slow
def test_failed_install_raises_and_leaves_no_cache_dir(tmp_path: Path) -> None:
    missing = tmp_path / f"{PACKAGE}-9.9-py3-none-any.whl"
    spec = parse_spec(f"{missing}\n", "requirements.txt")
    cache = tmp_path / "cache"
    logged: list[str] = []

    with pytest.raises(BuildError) as info:
        build_env(spec, cache, log=logged.append)

    message = info.value.message
    assert "install failed:" in message
    assert missing.name in message
    assert cache_dirs(cache) == []
    assert any(line.startswith("$ ") for line in logged)
    assert any(missing.name in line for line in logged if not line.startswith("$ "))


def test_missing_interpreter_is_a_build_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # neither uv nor python3.99
    spec = parse_spec("numpy\n", "requirements.txt", python="3.99")
    cache = tmp_path / "cache"

    with pytest.raises(BuildError, match=r"^Python 3\.99 is not available: no python3\.99 on PATH"):
        build_env(spec, cache)
    assert cache_dirs(cache) == []


# -- a fake uv ----------------------------------------------------------------------------------

FAKE_UV = """\
#!{python}
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
call = {{
    "args": args,
    "cwd": os.getcwd(),
    "PYTHONPATH": os.environ.get("PYTHONPATH"),
    "PIP_DISABLE_PIP_VERSION_CHECK": os.environ.get("PIP_DISABLE_PIP_VERSION_CHECK"),
}}
if args[:2] == ["pip", "install"]:
    call["requirements"] = Path(args[-1]).read_text()
with open({calls!r}, "a") as calls:
    calls.write(json.dumps(call) + "\\n")
if args[0] == "venv":
    bin_dir = Path(args[-1]) / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
elif os.environ.get("FAKE_UV_FAIL"):
    print("Using Python 3.12.1 environment at: env", file=sys.stderr)
    print("error: No solution found when resolving dependencies", file=sys.stderr)
    print("  cause: Because a was not found in the package registry", file=sys.stderr)
    sys.exit(1)
"""


@pytest.fixture()
def fake_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a recording ``uv`` alone on PATH; return the file its calls are appended to."""
    if os.name == "nt":
        pytest.skip("the fake uv is a POSIX script")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "uv-calls.jsonl"
    uv = bin_dir / "uv"
    uv.write_text(FAKE_UV.format(python=sys.executable, calls=str(calls)))
    uv.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    return calls


def read_calls(calls: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def test_uv_is_used_when_on_path(tmp_path: Path, fake_uv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "leaks"))
    spec = parse_spec("a==1\n# comment\nb\n", "requirements.txt", python="3.12")
    cache = tmp_path / "cache"

    result = build_env(spec, cache)

    target = cache / spec.content_hash[:16]
    assert (result.path, result.python, result.reused) == (target, target / "bin/python", False)
    venv_call, install_call = read_calls(fake_uv)
    assert venv_call["args"] == ["venv", "--python", "3.12", str(target)]
    assert install_call["args"][:-1] == ["pip", "install", "--python", str(result.python), "-r"]
    assert install_call["requirements"] == "a==1\nb\n"
    for call in (venv_call, install_call):
        assert call["cwd"] == str(cache)
        assert call["PYTHONPATH"] is None
        assert call["PIP_DISABLE_PIP_VERSION_CHECK"] == "1"
    assert json.loads((target / "modelport-env.json").read_text())["tool"] == "uv"

    assert build_env(spec, cache).reused is True
    assert len(read_calls(fake_uv)) == 2


def test_no_requirements_means_no_install_and_unpinned_means_our_python(tmp_path: Path, fake_uv: Path) -> None:
    build_env(parse_spec("# nothing yet\n", "requirements.txt"), tmp_path / "cache")
    [venv_call] = read_calls(fake_uv)
    assert venv_call["args"][:3] == ["venv", "--python", sys.executable]


def test_leftovers_of_a_crashed_build_are_rebuilt(tmp_path: Path, fake_uv: Path) -> None:
    spec = parse_spec("a==1\n", "requirements.txt")
    half_built = tmp_path / "cache" / spec.content_hash[:16]
    (half_built / "bin").mkdir(parents=True)
    (half_built / "junk").write_text("from a crashed build")

    result = build_env(spec, tmp_path / "cache")

    assert result.reused is False
    assert not (half_built / "junk").exists()
    assert (half_built / "modelport-env.json").is_file()


def test_tool_failure_is_one_line_and_leaves_no_cache_dir(
    tmp_path: Path, fake_uv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_UV_FAIL", "1")  # the venv is created, then the install fails
    spec = parse_spec("a==1\n", "requirements.txt")
    logged: list[str] = []

    with pytest.raises(BuildError) as info:
        build_env(spec, tmp_path / "cache", log=logged.append)

    assert info.value.message == (
        "uv pip install failed: error: No solution found when resolving dependencies; "
        "cause: Because a was not found in the package registry"
    )
    assert "Using Python 3.12.1 environment at: env" in "\n".join(logged)
    assert [call["args"][0] for call in read_calls(fake_uv)] == ["venv", "pip"]
    assert cache_dirs(tmp_path / "cache") == []
