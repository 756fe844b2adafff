"""``data_collector``: which payloads a deployment keeps, for what share of requests, in which
file format and how often files roll over (Azure's keys and defaults; read by
:mod:`modelport.monitor.collector`, which owns the files)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field

from modelport.schema.choices import CollectionName, FileFormat, RollingRate
from modelport.schema.types import Document, Flag, one_of, positive


def _unknown_collection(value: object) -> str:
    return f"unknown collection; modelport collects {' and '.join(name.value for name in CollectionName)}"


def _empty_is_default(value: object) -> object:
    """``model_inputs:`` with nothing under it is a collection with its defaults."""
    if isinstance(value, dict):
        return {key: {} if item is None else item for key, item in value.items()}
    return value


def _rate(value: object) -> float:
    rate = positive(value)
    if rate > 1:
        raise ValueError(f"{value} is more than 1 (a fraction of requests: 0.1 collects one in ten)")
    return rate


class Collection(Document):
    cloud_keys: ClassVar[frozenset[str]] = frozenset({"data", "client_id"})

    enabled: Flag = False


class DataCollector(Document):
    """``data_collector``: collections are off unless ``enabled``; the rest are Azure's defaults."""

    cloud_keys: ClassVar[frozenset[str]] = frozenset({"request_logging", "destination"})

    collections: Annotated[
        dict[Annotated[CollectionName, one_of(CollectionName, _unknown_collection)], Collection],
        BeforeValidator(_empty_is_default),
    ] = {}
    sampling_rate: Annotated[float, Field(gt=0, le=1), BeforeValidator(_rate)] = 1.0
    rolling_rate: Annotated[RollingRate, one_of(RollingRate)] = RollingRate.HOUR
    format: Annotated[FileFormat, one_of(FileFormat)] = FileFormat.PARQUET

    @property
    def enabled(self) -> list[CollectionName]:
        return [name for name, collection in self.collections.items() if collection.enabled]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
