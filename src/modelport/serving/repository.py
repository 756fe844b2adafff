"""The set of models a server knows, which of them are loaded, and lookups by name/version.

Models are loaded from their ``ModelSource`` at start-up; the repository extension's
load/unload calls reload or drop them at run time. Lookups follow Triton: without a version,
the highest loaded version answers.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from modelport.core.enums import StrEnum
from modelport.core.errors import ModelportError, NotFoundError, ValidationError
from modelport.serving.model import ServedModel
from modelport.serving.sources import ModelSource


class ModelState(StrEnum):
    """A model version in the repository index (Triton's spellings)."""

    READY = "READY"  # loaded: requests are answered
    UNAVAILABLE = "UNAVAILABLE"  # not loaded: failed to load, or unloaded; the index gives the reason


class ModelNotReady(ModelportError):
    http_status = 400


class ModelRepository:
    def __init__(self, sources: list[ModelSource]) -> None:
        self._sources: dict[str, list[ModelSource]] = defaultdict(list)
        for source in sources:
            self._sources[source.name].append(source)
        self._loaded: dict[str, dict[str, ServedModel]] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return sorted(self._sources)

    def load_all(self) -> None:
        """Load every model; the first failure propagates (the server must not start half-ready)."""
        for name in self.names:
            self.load(name)

    def load(self, name: str) -> None:
        sources = self._sources.get(name)
        if not sources:
            raise NotFoundError(f"failed to load {name!r}: no such model in the repository")
        try:
            loaded = {str(s.version): ServedModel.load(s) for s in sources}
        except ModelportError as exc:
            self._errors[name] = str(exc)
            raise
        with self._lock:
            previous = self._loaded.get(name, {})
            self._loaded[name] = loaded
            self._errors.pop(name, None)
        for model in previous.values():
            model.close()

    def unload(self, name: str) -> None:
        if name not in self._sources:
            raise NotFoundError(f"failed to unload {name!r}: no such model in the repository")
        with self._lock:
            previous = self._loaded.pop(name, {})
        for model in previous.values():
            model.close()

    def get(self, name: str, version: str | None = None) -> ServedModel:
        versions = self._loaded.get(name)
        if versions is None:
            if name in self._sources:
                raise ModelNotReady(f"Model {name!r} is not ready (unloaded)")
            raise NotFoundError(f"Request for unknown model: {name!r} is not found")
        if version is None or version == "":
            return versions[max(versions, key=int)]
        if not version.isdigit():
            raise ValidationError(f"version: {version!r} is not a number")
        model = versions.get(str(int(version)))
        if model is None:
            raise NotFoundError(f"Request for unknown model: {name!r} version {version} is not found")
        return model

    def is_ready(self, name: str, version: str | None = None) -> bool:
        try:
            self.get(name, version)
        except ModelportError:
            return False
        return True

    @property
    def ready(self) -> bool:
        return not self.unready_reasons()

    def unready_reasons(self) -> list[str]:
        """Why the server is not ready, one line per model it serves that is not loaded. Triton's
        strict readiness: the server is ready when every model it should serve is. Here that is
        every model it was started with, so a model unloaded through the repository extension
        makes the server unready, and whoever routes to it (the daemon's probes) stops sending
        requests that could only fail."""
        return [
            f"model {name!r} is not ready ({self._errors.get(name, 'unloaded')})"
            for name in self.names
            if name not in self._loaded
        ]

    def loaded(self) -> list[ServedModel]:
        return [model for versions in list(self._loaded.values()) for model in versions.values()]

    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        entries = []
        for name in self.names:
            for source in self._sources[name]:
                version = str(source.version)
                if name in self._loaded and version in self._loaded[name]:
                    entries.append({"name": name, "version": version, "state": ModelState.READY, "reason": ""})
                elif not ready_only:
                    reason = self._errors.get(name, "unloaded")
                    entries.append(
                        {"name": name, "version": version, "state": ModelState.UNAVAILABLE, "reason": reason}
                    )
        return entries

    def close(self) -> None:
        with self._lock:
            loaded, self._loaded = self._loaded, {}
        for versions in loaded.values():
            for model in versions.values():
                model.close()
