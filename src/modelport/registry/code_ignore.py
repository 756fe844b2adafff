"""Which files of a deployment's code folder go into its snapshot.

A code folder is often a project's root (``code: ../``), holding the workspace itself, a
virtualenv or a Git history: none of it is code a replica imports, a virtualenv holds links
(which a snapshot refuses), and copying the workspace into itself never ends. So, at any depth,
the names in :data:`ALWAYS_SKIPPED` and the workspace's own folder are left out, and an ignore
file at the top of the code folder is honoured as Azure ML does: ``.amlignore`` when there is
one, else ``.gitignore``.

Ignore files take the common part of the ``.gitignore`` syntax, matched with :mod:`fnmatch`:
blank lines and ``#`` comments are skipped; a pattern without a ``/`` matches a name at any
depth, one with a ``/`` (``build/*.o``, ``/dist``) the path from the code folder; a trailing
``/`` matches folders only; ``**/`` in front matches at any depth; ``!pattern`` takes back in
what an earlier pattern left out; the last matching pattern decides. A folder left out is not
entered, so nothing below it comes back.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from modelport.core.errors import ValidationError
from modelport.core.settings import DEFAULT_DIRNAME

ALWAYS_SKIPPED = frozenset({".git", ".venv", "venv", "__pycache__", DEFAULT_DIRNAME})
IGNORE_FILES = (".amlignore", ".gitignore")  # the first one present is read


@dataclass(frozen=True)
class Pattern:
    """One line of an ignore file."""

    globs: tuple[str, ...]  # a path matching any of them matches
    anchored: bool  # matched against the path from the code folder, not the name alone
    folders_only: bool
    negated: bool

    @classmethod
    def parse(cls, line: str) -> Pattern | None:
        text = line.strip()
        if not text or text.startswith("#"):
            return None
        negated = text.startswith("!")
        text = text.removeprefix("!")
        folders_only = text.endswith("/")
        text = text.rstrip("/")
        any_depth = text.startswith("**/")
        while text.startswith("**/"):
            text = text[3:]
        anchored = "/" in text  # a leading or inner "/" ties the pattern to the code folder
        text = text.lstrip("/")
        if not text:
            return None
        globs = (text, f"*/{text}") if any_depth and anchored else (text,)
        return cls(globs, anchored, folders_only, negated)

    def matches(self, relative: str, is_dir: bool) -> bool:
        if self.folders_only and not is_dir:
            return False
        target = relative if self.anchored else relative.rpartition("/")[2]
        return any(fnmatch.fnmatchcase(target, glob) for glob in self.globs)


class CodeIgnore:
    """The skip rule for one code folder (``manifest.scan``'s ``skip``)."""

    def __init__(self, folder: Path, workspace_root: Path) -> None:
        self.source, self.patterns = _read_patterns(folder)
        try:
            self.workspace: str | None = workspace_root.resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:  # the workspace is elsewhere
            self.workspace = None

    def __call__(self, relative: str, is_dir: bool) -> bool:
        if relative.rpartition("/")[2] in ALWAYS_SKIPPED or relative == self.workspace:
            return True
        skipped = False
        for pattern in self.patterns:
            if pattern.matches(relative, is_dir):
                skipped = not pattern.negated
        return skipped


def _read_patterns(folder: Path) -> tuple[str | None, tuple[Pattern, ...]]:
    """The ignore file's name and its patterns (none when the folder has no ignore file)."""
    for name in IGNORE_FILES:
        path = folder / name
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise ValidationError(f"code_configuration.code: cannot read {path} ({exc.strerror})") from None
            patterns = (Pattern.parse(line) for line in text.splitlines())
            return name, tuple(pattern for pattern in patterns if pattern is not None)
    return None, ()
