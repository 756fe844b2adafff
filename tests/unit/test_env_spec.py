"""Parsing environment files: what a conda.yml / requirements.txt means, and how it is rejected."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from modelport.core.errors import ValidationError
from modelport.envs.spec import EnvSpec, parse_spec, parse_spec_file


def conda(text: str, python: str | None = None) -> EnvSpec:
    return parse_spec(textwrap.dedent(text), "conda.yml", python)


def reqs(text: str, python: str | None = None) -> EnvSpec:
    return parse_spec(textwrap.dedent(text), "requirements.txt", python)


def rejected(text: str, filename: str, python: str | None = None) -> str:
    with pytest.raises(ValidationError) as info:
        parse_spec(textwrap.dedent(text), filename, python)
    assert "\n" not in info.value.message
    return info.value.message


# -- requirements files -------------------------------------------------------------------------


def test_requirements_keep_order_and_drop_comments_and_blanks() -> None:
    spec = reqs(
        """\
        # pinned for the model
        numpy==1.26.4

        scikit-learn>=1.2   # inline comment
        pkg @ https://example.org/pkg-1.0.tar.gz#sha256=abc
        """
    )
    assert spec == EnvSpec(
        kind="pip",
        python=None,
        pip_requirements=(
            "numpy==1.26.4",
            "scikit-learn>=1.2",
            "pkg @ https://example.org/pkg-1.0.tar.gz#sha256=abc",
        ),
        conda_only=(),
    )


def test_requirements_join_continuations_and_collapse_whitespace() -> None:
    spec = reqs(
        """\
        requests==2.31.0 \\
            --hash=sha256:aaa \\
            --hash=sha256:bbb
        joblib   ==  1.3
        """
    )
    assert spec.pip_requirements == (
        "requests==2.31.0 --hash=sha256:aaa --hash=sha256:bbb",
        "joblib == 1.3",
    )


def test_requirements_keep_index_options() -> None:
    spec = reqs("--extra-index-url https://download.pytorch.org/whl/cpu\n--no-index\ntorch\n")
    assert spec.pip_requirements == (
        "--extra-index-url https://download.pytorch.org/whl/cpu",
        "--no-index",
        "torch",
    )


@pytest.mark.parametrize("line", ["-r base.txt", "-rbase.txt", "--requirement=base.txt", "-c c.txt"])
def test_requirements_reject_references_to_other_files(line: str) -> None:
    message = rejected(f"numpy\n{line}\n", "requirements.txt")
    assert message.startswith("requirements.txt: line 2:")
    assert "another file" in message


def test_any_non_yaml_filename_is_a_requirements_file() -> None:
    assert parse_spec("numpy\n", "deps.in").kind == "pip"
    assert parse_spec("dependencies: [numpy]\n", "ENV.YAML").kind == "conda"


def test_byte_order_mark_is_ignored() -> None:
    assert reqs("\ufeffnumpy\n") == reqs("numpy\n")
    assert conda("\ufeffdependencies: [numpy]\n") == conda("dependencies: [numpy]\n")


def test_empty_requirements_file_is_an_empty_environment() -> None:
    assert reqs("# nothing\n\n").pip_requirements == ()


# -- conda files --------------------------------------------------------------------------------

AZUREML_SKLEARN = """\
    name: model-env
    channels:
      - conda-forge
    dependencies:
      - python=3.8
      - numpy=1.21.2
      - pip=21.2.4
      - scikit-learn=0.24.2
      - scipy=1.7.1
      - pip:
        - azureml-defaults==1.38.0
        - mlflow== 1.26.1
        - inference-schema[numpy-support]==1.3.0
    """


def test_conda_azureml_example() -> None:
    spec = conda(AZUREML_SKLEARN)
    assert spec == EnvSpec(
        kind="conda",
        python="3.8",
        pip_requirements=(
            "azureml-defaults==1.38.0",
            "mlflow== 1.26.1",
            "inference-schema[numpy-support]==1.3.0",
        ),
        conda_only=("numpy=1.21.2", "scikit-learn=0.24.2", "scipy=1.7.1"),
    )


def test_conda_flow_style_and_channel_prefixes() -> None:
    spec = conda(
        """\
        channels: [anaconda, conda-forge]
        dependencies: [defaults::python=3.10.4, conda-forge::lightgbm, pip, {pip: [joblib]}]
        """
    )
    assert spec.python == "3.10"
    assert spec.conda_only == ("conda-forge::lightgbm",)
    assert spec.pip_requirements == ("joblib",)


def test_conda_pip_options_and_several_pip_sections_keep_order() -> None:
    spec = conda(
        """\
        dependencies:
          - pip:
            - --extra-index-url https://pkgs.example.org/simple
            - a==1
          - pip:
            - b==2
        """
    )
    assert spec.pip_requirements == (
        "--extra-index-url https://pkgs.example.org/simple",
        "a==1",
        "b==2",
    )


@pytest.mark.parametrize(
    ("entry", "python"),
    [
        ("python=3.10", "3.10"),
        ("python==3.10.*", "3.10"),
        ("python=3.10.*", "3.10"),
        ("python=3.11.4", "3.11"),
        ("python=3.9.18=h955ad1f_0", "3.9"),
        ("python 3.12", "3.12"),
        ("Python=3.10", "3.10"),
        ("python", None),
        ("python>=3.9", None),
        ("python>=3.9,<3.12", None),
        ("python=3.9|3.10", None),
    ],
)
def test_conda_python_entries(entry: str, python: str | None) -> None:
    assert conda(f"dependencies:\n  - {entry}\n").python == python


def test_conda_without_python_or_dependencies() -> None:
    assert conda("name: empty\n") == EnvSpec("conda", None, (), ())
    assert conda("dependencies:\n  - pip\n").python is None


def test_explicit_python_overrides_and_is_normalized() -> None:
    assert conda(AZUREML_SKLEARN, python="3.11").python == "3.11"
    assert reqs("numpy\n", python="3.10.13").python == "3.10"
    assert reqs("numpy\n", python=" 3.12 ").python == "3.12"


@pytest.mark.parametrize("python", ["3", "three", "3.x", "python3.10", "3.10.4.1", ""])
def test_explicit_python_must_be_a_version(python: str) -> None:
    message = rejected("numpy\n", "requirements.txt", python=python)
    assert message.startswith("python:")
    assert repr(python) in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dependencies: [numpy\n", "conda.yml: invalid YAML at line 2"),
        ("", "conda.yml: expected a mapping"),
        ("- numpy\n", "conda.yml: expected a mapping"),
        ("dependancies: [numpy]\n", "conda.yml: unknown key 'dependancies'; did you mean 'dependencies'?"),
        ("name: [a]\n", "conda.yml: name: input should be a valid string"),
        ("channels: conda-forge\n", "conda.yml: channels: input should be a valid list"),
        ("channels: [conda-forge, 1]\n", "conda.yml: channels[1]: input should be a valid string"),
        ("dependencies: numpy\n", "conda.yml: dependencies: input should be a valid list"),
        ("dependencies:\n", "conda.yml: dependencies: input should be a valid list"),
        ("dependencies: [numpy, 1.26]\n", "conda.yml: dependencies[1]: input should be a valid string"),
        ("dependencies: [numpy, {conda: [x]}]\n", "conda.yml: dependencies[1].conda: unknown key (allowed: pip)"),
        ("dependencies: [numpy, ' ']\n", "conda.yml: dependencies[1]: expected a package string"),
        (
            "dependencies: [python, pip, {pip: joblib}]\n",
            "conda.yml: dependencies[2].pip: input should be a valid list",
        ),
        ("dependencies: [{pip: [a, 2]}]\n", "conda.yml: dependencies[0].pip[1]: input should be a valid string"),
        (
            "dependencies: [{pip: [-r req.txt]}]\n",
            "conda.yml: dependencies[0].pip[0]: '-r req.txt'",
        ),
        ("dependencies: [python=3]\n", "conda.yml: dependencies[0]: 'python=3' does not pin"),
        ("dependencies: [python=latest]\n", "conda.yml: dependencies[0]: 'python=latest'"),
        (
            "dependencies: [python=3.10, python=3.11]\n",
            "conda.yml: dependencies[1]: python is given",
        ),
    ],
)
def test_conda_errors_name_file_and_key(text: str, message: str) -> None:
    assert rejected(text, "conda.yml").startswith(message)


def test_conda_file_that_is_only_invalid_with_explicit_python_reports_python() -> None:
    assert rejected("dependencies: [numpy]\n", "conda.yml", python="3").startswith("python:")


# -- files --------------------------------------------------------------------------------------


def test_parse_spec_file_reads_both_formats(tmp_path: Path) -> None:
    (tmp_path / "conda.yaml").write_text(textwrap.dedent(AZUREML_SKLEARN))
    (tmp_path / "requirements.txt").write_bytes("\ufeffnumpy==1.26\n".encode())  # Windows BOM
    assert parse_spec_file(tmp_path / "conda.yaml") == conda(AZUREML_SKLEARN)
    assert parse_spec_file(tmp_path / "requirements.txt", python="3.11") == EnvSpec("pip", "3.11", ("numpy==1.26",), ())


def test_parse_spec_file_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(ValidationError, match=re.escape(f"{missing}: file not found")):
        parse_spec_file(missing)
    with pytest.raises(ValidationError, match=re.escape(f"{tmp_path}: cannot read")):
        parse_spec_file(tmp_path)
    latin1 = tmp_path / "requirements.txt"
    latin1.write_bytes(b"caf\xe9\n")
    with pytest.raises(ValidationError, match=re.escape(f"{latin1}: not UTF-8 text")):
        parse_spec_file(latin1)
    bad = tmp_path / "env.yml"
    bad.write_text("dependencies: [{pip: x}]\n")
    with pytest.raises(ValidationError, match=re.escape(f"{bad}: dependencies[0].pip: input should be a valid list")):
        parse_spec_file(bad)


# -- content hash -------------------------------------------------------------------------------


def test_hash_ignores_comments_formatting_and_conda_only_packages() -> None:
    plain = reqs("numpy==1.26\njoblib\n", python="3.10")
    commented = reqs("# header\nnumpy==1.26   # why\n\n  joblib\n", python="3.10")
    from_conda = conda("dependencies: [python=3.10, cudatoolkit=11.8, {pip: ['numpy==1.26', joblib]}]\n")
    assert plain.content_hash == commented.content_hash == from_conda.content_hash
    assert len(plain.content_hash) == 64
    assert int(plain.content_hash, 16) >= 0


def test_hash_depends_on_python_and_requirement_order() -> None:
    base = reqs("numpy\njoblib\n", python="3.10")
    assert base.content_hash != reqs("numpy\njoblib\n", python="3.11").content_hash
    assert base.content_hash != reqs("numpy\njoblib\n").content_hash
    assert base.content_hash != reqs("joblib\nnumpy\n", python="3.10").content_hash
    assert base.content_hash != reqs("numpy\njoblib==1.3\n", python="3.10").content_hash


def test_hash_is_stable_across_releases() -> None:
    # Cached environments are found by this value: changing it orphans every built environment.
    # sha256 of {"pip_requirements":["numpy==1.26"],"python":"3.10"}
    spec = EnvSpec("pip", "3.10", ("numpy==1.26",), ())
    assert spec.content_hash == "64d06a851912fb801f7a7bd32ab0f42aefc98706141463f84ba72db2010fa1a5"
