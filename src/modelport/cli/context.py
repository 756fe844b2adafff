"""Per-invocation state: the workspace is opened only when a command needs it."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import click

from modelport.core.settings import resolve_settings

if TYPE_CHECKING:  # imported when a command opens it: --help and daemon clients skip SQLAlchemy
    from modelport.workspace import Workspace


class AppContext:
    def __init__(self, workspace: str | None) -> None:
        self._path = workspace

    @property
    def root(self) -> Path:
        """The workspace's folder, without opening its database (what a daemon client needs)."""
        return resolve_settings(self._path).root

    @cached_property
    def workspace(self) -> Workspace:
        from modelport.workspace import Workspace

        return Workspace(self._path)

    def close(self) -> None:
        if "workspace" in self.__dict__:
            self.workspace.close()


pass_app = click.make_pass_decorator(AppContext)
