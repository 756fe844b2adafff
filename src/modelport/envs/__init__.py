"""Environments: parse conda/requirements files into specs and build them as cached virtualenvs.

Models run in their own virtualenv so that their dependencies never meet modelport's; builds are
cached by content hash because they are slow and most deployments reuse an environment.
``spec`` (the reader, over pydantic) and ``builder`` are imported by what uses them: opening a
workspace sweeps the build cache and needs the builder alone.
"""
