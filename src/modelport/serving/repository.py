"""The set of models a server knows, which of them are loaded, and lookups by name/version.

Models are loaded from their ``ModelSource`` at start-up; the repository extension's
load/unload calls reload or drop them at run time. Lookups follow Triton: without a version,
the highest loaded version answers.

Ensembles follow Triton too (and registered pipelines, ``serving.pipeline``, the same way): they load after the models they run (loading one loads those that
are not), their steps are checked against those models' completed configs then and again when
one of them is reloaded, and an ensemble is ready only while every model it runs is.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from modelport.core.enums import StrEnum
from modelport.core.errors import ModelportError, NotFoundError, ValidationError
from modelport.registry.sources import ModelSource
from modelport.runtime.config import ModelConfig
from modelport.runtime.ensemble import plan_ensemble
from modelport.serving.ensemble import EnsembleModel
from modelport.serving.model import Servable, ServedModel
from modelport.serving.pipeline import PipelineModel


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
        self._loaded: dict[str, dict[str, Servable]] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return sorted(self._sources)

    def load_all(self) -> None:
        """Load every model, ensembles last; the first failure propagates (the server must not
        start half-ready)."""
        for name in sorted(self.names, key=self._composes):
            if name not in self._loaded:  # an ensemble loads the ensembles it runs first
                self.load(name)

    def load(self, name: str) -> None:
        self._load(name, ())

    def _load(self, name: str, ensembles: tuple[str, ...]) -> None:
        """Load ``name``; ``ensembles`` are those being loaded that (in turn) run it."""
        sources = self._sources.get(name)
        if not sources:
            raise NotFoundError(f"failed to load {name!r}: no such model in the repository")
        try:
            loaded = {str(s.version): self._load_source(s, ensembles) for s in sources}
        except ModelportError as exc:
            self._errors[name] = str(exc)
            raise
        with self._lock:
            previous = self._loaded.get(name, {})
            self._loaded[name] = loaded
            self._errors.pop(name, None)
        for model in previous.values():
            model.close()
        if not self._composes(name):
            self._recheck_ensembles(name)

    def _load_source(self, source: ModelSource, ensembles: tuple[str, ...]) -> Servable:
        if source.pipeline is not None:
            for name in dict.fromkeys(model for model, _ in source.pipeline.pins.values()):
                if name not in self._loaded:
                    self._load(name, ensembles)
            return PipelineModel.load(source, self._configs(), self.get)
        if source.config is None or not source.config.is_ensemble:
            return ServedModel.load(source)
        assert source.config.ensemble_scheduling is not None, "checked by the config"
        chain = (*ensembles, source.name)
        for index, step in enumerate(source.config.ensemble_scheduling.steps):
            if step.model_name in chain:
                loop = " → ".join((*chain[chain.index(step.model_name) :], step.model_name))
                raise ValidationError(
                    f"ensemble {source.name!r}: step {index} (model {step.model_name!r}): the ensembles run "
                    f"each other in a cycle ({loop})"
                )
            if step.model_name in self._sources and step.model_name not in self._loaded:
                self._load(step.model_name, chain)
        return EnsembleModel(source, plan_ensemble(source.config, self._configs()), self.get)

    def _configs(self) -> dict[str, dict[str, ModelConfig]]:
        """Every loaded model's completed config by name and version, what ensembles are checked against."""
        return {
            name: {version: model.config for version, model in versions.items()}
            for name, versions in list(self._loaded.items())
        }

    def _composes(self, name: str) -> bool:
        """Whether ``name`` runs other models (an ensemble or a pipeline): it loads after them."""
        return any(
            source.pipeline is not None or (source.config is not None and source.config.is_ensemble)
            for source in self._sources[name]
        )

    def _recheck_ensembles(self, name: str) -> None:
        """A model that was loaded again may take or give other tensors now: each loaded ensemble
        running it is checked again, and unloaded with the reason when it no longer fits."""
        for ensemble, versions in list(self._loaded.items()):
            for model in versions.values():
                if not isinstance(model, EnsembleModel) or name not in dict(model.plan.composing):
                    continue
                try:
                    model.replan(self._configs())
                except ValidationError as exc:
                    self.unload(ensemble)
                    self._errors[ensemble] = str(exc)
                    break

    def unload(self, name: str) -> None:
        if name not in self._sources:
            raise NotFoundError(f"failed to unload {name!r}: no such model in the repository")
        with self._lock:
            previous = self._loaded.pop(name, {})
        for model in previous.values():
            model.close()

    def get(self, name: str, version: str | None = None) -> Servable:
        versions = self._loaded.get(name)
        if versions is None:
            if name in self._sources:
                raise ModelNotReady(f"Model {name!r} is not ready ({self._errors.get(name, 'unloaded')})")
            raise NotFoundError(f"Request for unknown model: {name!r} is not found")
        if version is None or version == "":
            model = versions[max(versions, key=int)]
        elif not version.isdigit():
            raise ValidationError(f"version: {version!r} is not a number")
        elif (found := versions.get(str(int(version)))) is None:
            raise NotFoundError(f"Request for unknown model: {name!r} version {version} is not found")
        else:
            model = found
        reason = self._composing_unready(model)
        if reason:
            raise ModelNotReady(f"Model {name!r} is not ready ({reason})")
        return model

    def _composing_unready(self, model: Servable) -> str:
        """Why an ensemble cannot run now: a model it runs is not ready (empty for other models)."""
        if not isinstance(model, EnsembleModel):
            return ""
        for name, version in model.plan.composing:
            if not self.is_ready(name, version):
                return f"composing model {name!r}" + (f" version {version}" if version else "") + " is not ready"
        return ""

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
        return [f"model {name!r} is not ready ({reason})" for name in self.names if (reason := self._unready(name))]

    def _unready(self, name: str, version: str | None = None) -> str:
        """Why ``name`` (``version``, or its highest) cannot answer now; empty when it can."""
        versions = self._loaded.get(name)
        if versions is None:
            return self._errors.get(name, "unloaded")
        model = versions.get(version) if version else versions[max(versions, key=int)]
        return "unloaded" if model is None else self._composing_unready(model)

    def loaded(self) -> list[Servable]:
        return [model for versions in list(self._loaded.values()) for model in versions.values()]

    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        entries = []
        for name in self.names:
            for source in self._sources[name]:
                version = str(source.version)
                reason = self._unready(name, version)
                if not reason:
                    entries.append({"name": name, "version": version, "state": ModelState.READY, "reason": ""})
                elif not ready_only:
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
