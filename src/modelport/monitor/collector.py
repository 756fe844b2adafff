"""Payload collection: a sample of what a deployment receives and answers, in rolling files.

Layout (Azure's data collector's, under the workspace)::

    <directory>/<collection>/YYYY/MM/DD/HH/<instance>-<window>[-<n>].parquet | .jsonl

``collection`` is ``model_inputs`` or ``model_outputs``; both carry ``request_id``, ``time``
and ``row`` (the instance's index in its request), so the two join. Parquet holds one row per
instance with one column per feature (see :mod:`.payloads`); JSONL holds one line per request in
Azure's layout (``specversion``, ``id``, ``source``, ``type``, ``time``, ``data`` as records,
``correlationid``...).

The request path only decides whether to sample and queues references to what it already
has; decoding, conversion and writing happen on a :class:`~.writer.BackgroundWriter` thread,
and a full queue drops records (counted) rather than slowing requests. Files are always
readable: a Parquet file is written whole under a temporary name and renamed into place (every
``flush_s`` or when the window rolls over), a JSONL line is appended whole; a crash loses at
most the records not yet flushed.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from modelport.monitor.payloads import json_columns, row_count, tensor_columns
from modelport.monitor.writer import BackgroundWriter

COLLECTIONS = ("model_inputs", "model_outputs")
ROLLING_RATES = {"minute": "%Y%m%d%H%M", "hour": "%Y%m%d%H", "day": "%Y%m%d"}
FORMATS = ("parquet", "jsonl")
FLUSH_S = 10.0


@dataclass(frozen=True)
class CollectorSettings:
    """Validated by the deployment definition (``data_collector``); this is the result."""

    directory: Path
    collections: frozenset[str] = frozenset(COLLECTIONS)
    sampling_rate: float = 1.0
    rolling_rate: str = "hour"
    format: str = "parquet"
    flush_s: float = FLUSH_S


@dataclass(frozen=True)
class Collected:
    """One sampled request: tensors when the model answered through v2, raw JSON bodies for
    ``/score``; the writer thread turns either into columns."""

    request_id: str
    time: float
    model_version: str | None = None
    inputs: dict[str, np.ndarray] | None = None
    outputs: dict[str, np.ndarray] | None = None
    request_body: bytes | None = None
    response_body: bytes | None = None


@dataclass
class _Window:
    key: str = ""
    tables: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    opened: float = 0.0


class PayloadCollector:
    def __init__(self, settings: CollectorSettings, source: str, instance: str | None = None) -> None:
        self.settings = settings
        self.source = source
        self.instance = instance or f"{os.uname().nodename}-{os.getpid()}"
        self._windows: dict[str, _Window] = defaultdict(_Window)
        self._parts = 0
        self._writer: BackgroundWriter[Collected] = BackgroundWriter(
            "payload-collector", self._write, tick=self._tick, finish=self._flush_all
        )

    @property
    def dropped(self) -> int:
        return self._writer.dropped

    @property
    def written(self) -> int:
        return self._writer.written

    def sample(self) -> bool:
        """Whether this request is collected (``sampling_rate`` of them, independently)."""
        rate = self.settings.sampling_rate
        return rate >= 1.0 or random.random() < rate

    def submit(self, item: Collected) -> None:
        self._writer.submit(item)

    def close(self) -> None:
        self._writer.close()

    # -- the writer thread ----------------------------------------------------------------------

    def _write(self, items: list[Collected]) -> None:
        for item in items:
            for collection, columns in self._columns(item):
                if row_count(columns):
                    self._add(collection, item, columns)

    def _columns(self, item: Collected) -> list[tuple[str, dict[str, Any]]]:
        wanted = self.settings.collections
        found = []
        if "model_inputs" in wanted:
            if item.inputs is not None:
                found.append(("model_inputs", tensor_columns(item.inputs)))
            elif item.request_body is not None:
                found.append(("model_inputs", json_columns(item.request_body, "input")))
        if "model_outputs" in wanted:
            if item.outputs is not None:
                found.append(("model_outputs", tensor_columns(item.outputs)))
            elif item.response_body is not None:
                found.append(("model_outputs", json_columns(item.response_body, "prediction")))
        return found

    def _add(self, collection: str, item: Collected, columns: dict[str, Any]) -> None:
        moment = dt.datetime.fromtimestamp(item.time, dt.timezone.utc)
        key = moment.strftime(ROLLING_RATES[self.settings.rolling_rate])
        if self.settings.format == "jsonl":
            self._append_jsonl(collection, key, moment, item, columns)
            return
        window = self._windows[collection]
        if window.key != key:
            self._flush(collection)
            window.key, window.opened = key, item.time
        rows = row_count(columns)
        meta = {"request_id": [item.request_id] * rows, "time": [moment] * rows, "row": np.arange(rows)}
        window.tables.append({**meta, **columns})
        window.rows += rows

    def _tick(self) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        for collection, window in self._windows.items():
            expired = window.key and window.key != now.strftime(ROLLING_RATES[self.settings.rolling_rate])
            if window.tables and (expired or now.timestamp() - window.opened >= self.settings.flush_s):
                self._flush(collection)

    def _flush_all(self) -> None:
        for collection in list(self._windows):
            self._flush(collection)

    def _flush(self, collection: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        window = self._windows[collection]
        if not window.tables:
            return
        tables = [pa.table(columns) for columns in window.tables]
        table = pa.concat_tables(tables, promote_options="permissive")
        self._parts += 1
        target = self._folder(collection, window.key) / f"{self.instance}-{window.key}-{self._parts}.parquet"
        temporary = target.with_name(f".{target.name}.tmp")
        pq.write_table(table, temporary)
        os.replace(temporary, target)
        window.tables, window.rows, window.opened = [], 0, dt.datetime.now(dt.timezone.utc).timestamp()

    def _append_jsonl(self, collection: str, key: str, moment: dt.datetime, item: Collected,
                      columns: dict[str, Any]) -> None:
        names = list(columns)
        values = [_listed(columns[name]) for name in names]
        line = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": self.source,
            "type": f"azureml.inference.{collection}",
            "datacontenttype": "application/json",
            "time": moment.isoformat().replace("+00:00", "Z"),
            "data": [dict(zip(names, row)) for row in zip(*values)],
            "correlationid": item.request_id,
            "xrequestid": item.request_id,
            "modelversion": item.model_version or "",
            "collectdatatype": "pandas.core.frame.DataFrame",
            "agent": "modelport",
        }
        path = self._folder(collection, key) / f"{self.instance}-{key}.jsonl"
        with open(path, "ab") as file:
            file.write(orjson.dumps(line, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")

    def _folder(self, collection: str, key: str) -> Path:
        start = dt.datetime.strptime(key, ROLLING_RATES[self.settings.rolling_rate])
        folder = self.settings.directory / collection / start.strftime("%Y/%m/%d/%H")
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def _listed(column: Any) -> list[Any]:
    return column.tolist() if isinstance(column, np.ndarray) else list(column)
