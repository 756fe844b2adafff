"""The "Examples:" block at the end of every command's ``--help``, as ``az`` prints one.

Each example is a comment saying what it does over the command line itself, ready to paste.
Every paragraph starts with ``\\b`` so that click prints the lines as written instead of
re-wrapping them into one.
"""

from __future__ import annotations


def examples(*items: tuple[str, str]) -> str:
    """A command's ``epilog`` for ``(what it does, command line)`` pairs; a command line may
    hold several lines (``\\n``), one command each."""
    blocks = []
    for what, command in items:
        lines = [f"# {what}", *command.splitlines()]
        blocks.append("\n".join(f"  {line}" for line in lines))
    return "\b\nExamples:\n" + "\n\n\b\n".join(blocks)
