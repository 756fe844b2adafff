"""Every command's ``--help`` ends with examples that are real invocations of that command, and
the help of ``--set`` and ``demo`` says what the command itself takes and does.

The walk over the command tree runs in-process (about seventy help pages); the checks of the
texts a user reads run the real ``modelport`` command.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from modelport.cli.main import cli


def _command_paths(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and group under ``group``, ``()`` being the root itself (lazy groups too:
    only ``list_commands``/``get_command`` are used)."""
    yield path
    ctx = click.Context(group, info_name="modelport")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            yield from _command_paths(command, (*path, name))
        else:
            yield (*path, name)


COMMANDS = list(_command_paths(cli))


def _examples(help_text: str) -> tuple[list[str], list[str]]:
    """The Examples block's comments (what each example does) and command lines."""
    _, found, block = help_text.partition("Examples:\n")
    assert found, help_text
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    return [line for line in lines if line.startswith("# ")], [line for line in lines if not line.startswith("# ")]


def _parse(line: str) -> tuple[str, ...]:
    """The command path of a ``modelport ...`` line, after click parsed its options and arguments
    as it would to run it (an unknown option, a missing required one or a bad value raises)."""
    tokens = shlex.split(line.split(" | ")[0])[1:]
    while tokens[0] in ("--workspace", "-w"):
        tokens = tokens[2:]
    command: click.Command = cli
    ctx = click.Context(cli, info_name="modelport")
    path: list[str] = []
    while isinstance(command, click.Group):
        name = tokens.pop(0)
        found = command.get_command(ctx, name)
        assert found is not None, f"{line}: no command {name!r}"
        command, path = found, [*path, name]
    command.make_context(path[-1], tokens, parent=ctx)
    return tuple(path)


def test_the_walk_finds_the_whole_tree() -> None:
    assert {
        (),
        ("demo",),
        ("model", "alias", "set"),
        ("endpoint", "update"),
        ("deployment", "create"),
        ("batch-endpoint", "invoke"),
        ("job", "resume"),
        ("monitor", "drift"),
    } <= set(COMMANDS)
    assert len(COMMANDS) > 60


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "modelport")
def test_every_help_ends_with_examples_of_that_command(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="modelport")
    assert result.exit_code == 0, result.output
    comments, lines = _examples(result.output)
    assert 1 <= len(comments) <= 3, comments
    invocations = [_parse(line) for line in lines if line.startswith("modelport ")]
    assert any(invoked[: len(path)] == path for invoked in invocations), (
        f"no example of modelport {' '.join(path)}: {lines}"
    )


def _help(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "modelport", *args, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())  # options' help is wrapped to the terminal: compare words


@pytest.mark.parametrize(
    ("args", "example"),
    [
        (("endpoint", "create"), "--set traffic.blue=90"),
        (("endpoint", "update"), "--set traffic.blue=90"),
        (("deployment", "create"), "--set instance_count=2"),
        (("deployment", "update"), "--set instance_count=2"),
        (("batch-endpoint", "update"), "--set defaults.deployment_name=nocode"),
        (("batch-deployment", "create"), "--set settings.mini_batch_size=5"),
    ],
)
def test_set_shows_a_field_of_its_own_definition(args: tuple[str, ...], example: str) -> None:
    options = _help(*args).partition("Examples:")[0]
    assert example in options
    foreign = {
        "endpoint": "instance_count",
        "deployment": "traffic.",
        "batch-endpoint": "settings.",
        "batch-deployment": "defaults.",
    }[args[0]]
    assert foreign not in options


def test_demo_help_describes_every_step() -> None:
    text = _help("demo")
    steps = [
        "1. builds a small ONNX model",
        "2. serves it",
        "modelport serve",
        "3. starts the daemon",
        "online endpoint",
        "4. sends it 300 requests",
        "metrics",
        "5. checks the collected inputs for drift",
        "modelport monitor drift",
        "6. scores a 2,000-row CSV with the batch endpoint",
    ]
    for step in steps:
        assert step in text, step
