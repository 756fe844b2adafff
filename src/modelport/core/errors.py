"""The error types modelport raises on purpose.

Every error a user can cause is a :class:`ModelportError` whose message is one line that names
the bad field, file or reference. The CLI prints that line and exits 1; servers map the class to
an HTTP status (``http_status``). Anything else that escapes is a bug.
"""

from __future__ import annotations


class ModelportError(Exception):
    """Base class: a failure the user can act on, described in one line."""

    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever the caller built

    @property
    def message(self) -> str:
        return str(self)


class ValidationError(ModelportError):
    """Input is malformed: a bad name, field, file or value."""

    http_status = 400


class NotFoundError(ModelportError):
    """A reference (model, version, alias, environment...) resolves to nothing."""

    http_status = 404


class ConflictError(ModelportError):
    """The request contradicts stored state: a duplicate, an existing version, an object in use."""

    http_status = 409


class IntegrityError(ModelportError):
    """Stored bytes no longer match their recorded sha256; nothing is served from them."""

    http_status = 500


class BuildError(ModelportError):
    """Building something external (a virtualenv, a package) failed."""

    http_status = 500


class DiskError(ModelportError):
    """The filesystem refused: no permission, or a read-only file system. Names the path."""

    http_status = 500


class DiskFullError(DiskError):
    """No space (or quota) left where something was being written. Names the path."""

    http_status = 507


class MissingExtraError(ModelportError):
    """A feature needs packages of an optional extra that is not installed; names the pip command."""

    http_status = 501
