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
import itertools
import os
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from modelport.core.files import FILE_MODE, open_private, private_dir
from modelport.monitor.payloads import json_columns, row_count, tensor_columns
from modelport.monitor.writer import BackgroundWriter
from modelport.schema.choices import CollectionName, FileFormat, RollingRate

ROLLING_RATES = {RollingRate.MINUTE: "%Y%m%d%H%M", RollingRate.HOUR: "%Y%m%d%H", RollingRate.DAY: "%Y%m%d"}  # a window
FLUSH_S = 10.0


@dataclass(frozen=True)
class CollectorSettings:
    """Validated by the deployment definition (``data_collector``); this is the result."""

    directory: Path
    collections: frozenset[str] = frozenset(CollectionName)
    sampling_rate: float = 1.0
    rolling_rate: RollingRate = RollingRate.HOUR
    format: str = FileFormat.PARQUET
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
    """What one collection holds for the file being built: (item, what) pairs, where ``what`` is
    the item's tensors or JSON body for that collection, turned into columns only at flush."""

    key: str = ""
    items: list[tuple[Collected, Any]] = field(default_factory=list)
    opened: float = 0.0


class PayloadCollector:
    """The process's collector. A scoring script that uses the ``Collector`` API (Azure's
    ``azureml.ai.monitoring``, shimmed) sets ``explicit``: it then decides what is collected, and
    ``/score`` bodies are no longer kept automatically."""

    def __init__(self, settings: CollectorSettings, source: str, instance: str | None = None) -> None:
        self.settings = settings
        self.source = source
        self.instance = instance or f"{os.uname().nodename}-{os.getpid()}"
        self.explicit = False
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
        lines: dict[Path, list[bytes]] = defaultdict(list)
        for item in items:
            key = time.strftime(ROLLING_RATES[self.settings.rolling_rate], time.gmtime(item.time))
            for collection, what in self._parts_of(item):
                if self.settings.format == FileFormat.JSONL:
                    path = self._folder(collection, key) / f"{self.instance}-{key}.jsonl"
                    lines[path].append(self._jsonl_line(collection, item, _columns(what, collection)))
                    continue
                window = self._windows[collection]
                if window.key != key:
                    self._flush(collection)
                    window.key, window.opened = key, time.time()
                window.items.append((item, what))
        for path, chunk in lines.items():
            with open_private(path) as file:  # whole lines, appended at once
                file.write(b"".join(chunk))

    def _parts_of(self, item: Collected) -> list[tuple[str, Any]]:
        wanted = self.settings.collections
        found: list[tuple[str, Any]] = []
        if "model_inputs" in wanted:
            what = item.inputs if item.inputs is not None else item.request_body
            if what is not None:
                found.append(("model_inputs", what))
        if "model_outputs" in wanted:
            what = item.outputs if item.outputs is not None else item.response_body
            if what is not None:
                found.append(("model_outputs", what))
        return found

    def _tick(self) -> None:
        now = time.time()
        current = time.strftime(ROLLING_RATES[self.settings.rolling_rate], time.gmtime(now))
        for collection, window in self._windows.items():
            if window.items and (window.key != current or now - window.opened >= self.settings.flush_s):
                self._flush(collection)

    def _flush_all(self) -> None:
        for collection in list(self._windows):
            self._flush(collection)

    def _flush(self, collection: str) -> None:
        import pyarrow.parquet as pq

        window = self._windows[collection]
        items, window.items, window.opened = window.items, [], time.time()
        if not items:
            return
        try:
            table = _table(items, collection)
            self._parts += 1
            target = self._folder(collection, window.key) / f"{self.instance}-{window.key}-{self._parts}.parquet"
            temporary = target.with_name(f".{target.name}.tmp")
            try:
                pq.write_table(table, temporary)
                os.chmod(temporary, FILE_MODE)
                os.replace(temporary, target)
            finally:
                temporary.unlink(missing_ok=True)
        except Exception:  # counted and logged by the writer; the next window starts clean
            self._writer.dropped += len(items)
            raise

    def _jsonl_line(self, collection: str, item: Collected, columns: dict[str, Any]) -> bytes:
        names = list(columns)
        values = [_listed(columns[name]) for name in names]
        line = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": self.source,
            "type": f"azureml.inference.{collection}",
            "datacontenttype": "application/json",
            "time": dt.datetime.fromtimestamp(item.time, dt.timezone.utc),
            "data": [dict(zip(names, row)) for row in zip(*values)],
            "correlationid": item.request_id,
            "xrequestid": item.request_id,
            "modelversion": item.model_version or "",
            "collectdatatype": "pandas.core.frame.DataFrame",
            "agent": "modelport",
        }
        return orjson.dumps(line, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z) + b"\n"

    def _folder(self, collection: str, key: str) -> Path:
        start = dt.datetime.strptime(key, ROLLING_RATES[self.settings.rolling_rate])
        folder = self.settings.directory / collection / start.strftime("%Y/%m/%d/%H")
        return private_dir(folder)


_active: PayloadCollector | None = None


def activate(collector: PayloadCollector | None) -> None:
    """Make ``collector`` the one the ``Collector`` API of scoring scripts writes to."""
    global _active
    _active = collector


def active() -> PayloadCollector | None:
    return _active


def _columns(what: Any, collection: str) -> dict[str, Any]:
    """Columns of a payload; unnamed JSON values are called ``input`` or ``prediction``."""
    if hasattr(what, "columns") and hasattr(what, "to_numpy"):  # a DataFrame from the Collector API
        return {str(name): what[name].to_numpy() for name in what.columns}
    if isinstance(what, bytes):
        return json_columns(what, "input" if collection == "model_inputs" else "prediction")
    return tensor_columns(what)


def _table(items: list[tuple[Collected, Any]], collection: str) -> Any:
    """One Arrow table from a window's items. Consecutive tensor payloads of one shape (the usual
    case: one model, one input layout) are concatenated first and cut into columns once, so a
    collected request costs a few list appends until the flush."""
    import pyarrow as pa

    tables = []
    for _, run in itertools.groupby(items, key=lambda pair: _signature(pair[1])):
        pairs = list(run)
        if _signature(pairs[0][1]) is None:
            for item, what in pairs:
                if hasattr(what, "columns") and hasattr(what, "to_numpy"):  # pandas knows its own nulls
                    frame = pa.Table.from_pandas(what, preserve_index=False)
                    meta = pa.table(_meta([item], [frame.num_rows]))
                    tables.append(
                        pa.Table.from_arrays(
                            [*meta.columns, *frame.columns], names=[*meta.column_names, *map(str, frame.column_names)]
                        )
                    )
                    continue
                columns = _columns(what, collection)
                tables.append(pa.table({**_meta([item], [row_count(columns)]), **columns}))
            continue
        tensors = {name: np.concatenate([what[name] for _, what in pairs]) for name in pairs[0][1]}
        rows = [len(next(iter(what.values()))) for _, what in pairs]
        tables.append(pa.table({**_meta([item for item, _ in pairs], rows), **tensor_columns(tensors)}))
    return pa.concat_tables(tables, promote_options="permissive")


def _signature(what: Any) -> tuple | None:
    """Tensor payloads that can be concatenated share this; None for a JSON body or tensors
    without a common dim 0."""
    if not isinstance(what, dict):
        return None
    arrays = [np.asarray(array) for array in what.values()]
    if not arrays or any(a.ndim == 0 for a in arrays) or len({a.shape[0] for a in arrays}) != 1:
        return None
    return tuple((name, a.dtype.str, a.shape[1:]) for name, a in zip(what, arrays))


def _meta(items: list[Collected], rows: list[int]) -> dict[str, Any]:
    import pyarrow as pa

    times = np.repeat(np.array([int(item.time * 1e6) for item in items], dtype=np.int64), rows)
    return {
        "request_id": np.repeat(np.array([item.request_id for item in items], dtype=object), rows),
        "time": pa.array(times, pa.timestamp("us", tz="UTC")),
        "row": np.concatenate([np.arange(count, dtype=np.int64) for count in rows]),
    }


def _listed(column: Any) -> list[Any]:
    return column.tolist() if isinstance(column, np.ndarray) else list(column)
