"""What a batch deployment stores and what a batch job runs: typed, stored as the same JSON.

A deployment's stored spec pins its assets (``model`` and ``environment`` as ``NAME:V``) and
its settings; a job copies it with the settings the trigger overrode, where its outputs go and
the Ray cluster it runs on, so later changes to the deployment never alter a running job. The
rows hold :meth:`StoredSpec.to_json`, whose keys are the field names, which is how these specs
were always stored, so rows written before these classes existed read back.

Unlike what users write, a stored spec was checked when it was saved: keys it does not know are
ignored rather than refused (a row written by a newer version still reads), and a value of the
wrong shape means the row is damaged (:class:`~modelport.core.errors.IntegrityError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic
from pydantic import ConfigDict
from typing_extensions import Self

from modelport.core.errors import IntegrityError
from modelport.schema.base import Definition, describe_error


class StoredSpec(Definition):
    """A spec the system wrote: read with :meth:`read`, written with :meth:`to_json`."""

    model_config = ConfigDict(extra="ignore")

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> Self:
        """A stored row's spec; a damaged one raises :class:`IntegrityError` naming the field."""
        try:
            return cls.model_validate(data)
        except pydantic.ValidationError as exc:
            raise IntegrityError(f"stored {cls.__name__}: {describe_error(exc, data)}") from None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class DeploymentSpec(StoredSpec):
    """A batch deployment as stored: ``model`` and ``environment`` as ``NAME:V`` references,
    ``code`` the absolute folder of ``scoring_script`` (both None for a no-code deployment of a
    tabular flavor), ``settings`` the ``BatchSettings`` as ``to_dict`` renders them."""

    description: str | None = None
    tags: dict[str, Any] = {}
    model: str | None = None
    flavor: str | None = None
    code: str | None = None
    scoring_script: str | None = None
    environment: str | None = None
    settings: dict[str, Any] = {}


class JobSpec(DeploymentSpec):
    """A batch job: its deployment's spec with the trigger's settings, where outputs go
    (``output_dir``, absolute) and the Ray cluster's address (None: the local engine)."""

    output_dir: str
    ray_address: str | None = None
