"""Per-invocation state: the workspace is opened only when a command needs it.

The default workspace, ``./.modelport``, depends on the folder a command runs in. Only the
commands that make something a workspace holds (``init``, ``demo``, registering a model, creating
an environment or a batch endpoint, starting the daemon) create it there; every other command
opens an existing one or fails naming the folder it looked in, so a command run from the wrong
folder neither leaves an empty ``.modelport`` behind nor answers "does not exist" about a
workspace nobody meant. A workspace named with ``--workspace`` or ``$MODELPORT_HOME`` is opened,
and made on first use, wherever it is named. While a workspace is open, a "not found" error
names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import click

from modelport.core.errors import NotFoundError
from modelport.core.settings import WorkspaceSettings, is_named, resolve_settings

if TYPE_CHECKING:  # imported when a command opens it: --help and daemon clients skip SQLAlchemy
    from modelport.workspace import Workspace

# Command paths (below ``modelport``) that may create the default workspace.
CREATING_COMMANDS = frozenset(
    {
        "init",
        "demo",
        "up",
        "model register",
        "environment create",
        "batch-endpoint create",
        "batch-deployment create",
    }
)


class AppContext:
    def __init__(self, workspace: str | None) -> None:
        self._path = workspace

    @property
    def settings(self) -> WorkspaceSettings:
        return resolve_settings(self._path)

    @property
    def root(self) -> Path:
        """The workspace's folder, without opening its database (what a daemon client needs)."""
        return self.settings.root

    @cached_property
    def workspace(self) -> Workspace:
        """The workspace; the default one is created only for the commands in :data:`CREATING_COMMANDS`."""
        from modelport.workspace import Workspace

        ctx = click.get_current_context()
        settings = self.settings
        if not (settings.exists or is_named(self._path) or _command_path(ctx) in CREATING_COMMANDS):
            raise NotFoundError(
                f"no workspace at {settings.root}; register a model first (or run modelport init), or pass --workspace"
            )
        workspace = Workspace(self._path)
        ctx.with_resource(_naming(workspace.root))
        return workspace

    def close(self) -> None:
        if "workspace" in self.__dict__:
            self.workspace.close()


def _command_path(ctx: click.Context) -> str:
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names))


@contextmanager
def _naming(root: Path) -> Iterator[None]:
    """A "not found" error leaving the command says which workspace it looked in."""
    try:
        yield
    except NotFoundError as exc:
        raise NotFoundError(f"{exc} (workspace {root})") from None


pass_app = click.make_pass_decorator(AppContext)
