"""The ``Flavor`` contract: everything modelport knows about one kind of model, in one object.

A flavor says how a model of its kind is recognised, what it loads as, what Triton calls it and
how it is served by default. The registry asks it when a model is registered (detection), the
runtime when one is loaded and when its config is completed; nothing else in modelport names a
framework. Built-in flavors and those of outside packages are the same kind of object, found the
same way (:mod:`.flavor_catalog`).

Two rules keep registration safe and start-up fast, and every flavor must follow them:

- Detectors read the model as data and never execute it: no unpickling, no framework import.
  A pickle is walked (``modelport.registry.flavors.pickle_walker``), an archive listed, a text
  model's head read. A detector returns None for content that is not its format, a
  :class:`FlavorInfo` (with ``details["format"]``) for content that is, and raises
  :class:`ValidationError` only for content that claims to be its format and is broken.
- The loader is named, not imported (``"package.module:function"``), so a framework is imported
  only when a model of its flavor is loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelport.core.errors import ModelportError, ValidationError
from modelport.runtime.flavor_info import FlavorInfo

if TYPE_CHECKING:
    from modelport.runtime.config import ModelConfig
    from modelport.runtime.predictor import Predictor

#: Reads one file: its path and first 256 bytes (every format is told by its head or its name).
FileDetector = Callable[[Path, bytes], "FlavorInfo | None"]
#: Reads one folder's layout (an ``MLmodel`` file, version folders, an entry script...).
FolderDetector = Callable[[Path], "FlavorInfo | None"]


@dataclass(frozen=True)
class Flavor:
    """One kind of model.

    ``name`` is what ``model register --flavor`` takes and what the registry stores.
    ``loader`` names ``load(model_dir, config, *, device) -> Predictor``; None for flavors that
    are served otherwise (a Triton repository, an entry script) or not at all (``custom``).
    ``claim_file`` reads a file that ``--flavor`` says is this flavor, whatever its name, and
    raises naming what is wrong: a format told by its name rather than its bytes needs it (ONNX
    has no magic number, so its detector looks at ``*.onnx`` files only).
    ``formats`` are the ``details["format"]`` values this flavor can load, so an explicit
    ``--flavor`` is checked against what detection found (a pickle fits several frameworks).
    ``required`` makes the flavor self-describing: content not recognised as one of its formats
    cannot be it, and this says what is missing ("is not an ONNX model").
    ``pickle_modules`` are the top-level modules whose classes in a pickle mean this flavor (and
    that its pickles may import without a warning).
    ``triton_platform``/``triton_backend`` are the names a Triton config uses for it (backend
    defaults to ``name``); ``fil_model_types`` the values of Triton FIL's ``model_type``
    parameter that mean it. ``max_batch_size`` is what a config-less model of this flavor
    batches up to (None: the runtime's default). ``tabular`` flavors take one ``[rows,
    features]`` input, which a registered signature may type. ``extra`` is the modelport extra
    that installs the framework.
    """

    name: str
    loader: str | None = None
    file_detectors: tuple[FileDetector, ...] = ()
    folder_detectors: tuple[FolderDetector, ...] = ()
    claim_file: Callable[[Path], FlavorInfo] | None = None
    formats: frozenset[str] = frozenset()
    required: str | None = None
    pickle_modules: frozenset[str] = frozenset()
    triton_platform: str | None = None
    triton_backend: str | None = None
    fil_model_types: frozenset[str] = frozenset()
    max_batch_size: int | None = None
    tabular: bool = False
    extra: str | None = None

    def __post_init__(self) -> None:
        if self.triton_backend is None:
            object.__setattr__(self, "triton_backend", self.name)

    @property
    def loadable(self) -> bool:
        """Whether models of this flavor are served through a :class:`Predictor`."""
        return self.loader is not None

    def load(self, model_dir: Path, config: ModelConfig | None = None, *, device: str = "cpu") -> Predictor:
        """Load the model in ``model_dir``, importing the loader (and its framework) only now."""
        if self.loader is None:
            raise ValidationError(f"flavor: {self.name!r} models are not loaded by a predictor")
        module_name, _, attribute = self.loader.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            hint = f": pip install 'modelport[{self.extra}]'" if self.extra else ""
            raise ModelportError(f"the {self.name} flavor cannot be loaded ({exc}){hint}") from None
        predictor: Predictor = getattr(module, attribute)(model_dir, config, device=device)
        return predictor
