"""modelport's version, here rather than in the package's ``__init__`` so that the servers and
the daemon can name it without importing the package root (which offers the SDK's ``Workspace``)."""

__version__ = "0.1.0"
