"""Per-invocation state: the workspace is opened only when a command needs it."""

from __future__ import annotations

from functools import cached_property

import click

from modelport.workspace import Workspace


class AppContext:
    def __init__(self, workspace: str | None) -> None:
        self._path = workspace

    @cached_property
    def workspace(self) -> Workspace:
        return Workspace(self._path)

    def close(self) -> None:
        if "workspace" in self.__dict__:
            self.workspace.close()


pass_app = click.make_pass_decorator(AppContext)
