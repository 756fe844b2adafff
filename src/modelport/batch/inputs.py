"""A job's input: which files or rows it is, and how mini-batches of it are read.

``resolve_input`` runs when a job is submitted and does everything that can fail on bad input
(missing path, empty folder, unreadable table), so a bad input is one error line and no job.
Its result, an :class:`InputPlan`, is stored with the job: a resumed job scores exactly the
items it was submitted with, cut into exactly the same mini-batches.

Files: a mini-batch is a list of file paths. Tabular (CSV, Parquet, JSONL, or a folder of
them): a mini-batch is a pyarrow table of consecutive rows across the files in order, read
as a stream of record batches, so tables larger than memory work. Any fsspec URL is accepted.
"""

from __future__ import annotations

import glob as globlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any

import fsspec
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

from modelport.core.errors import ValidationError
from modelport.registry.manifest import file_kind

INPUT_TYPES = ("uri_folder", "uri_file", "tabular")
_TABULAR_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pqt": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}
_READ_ROWS = 65_536  # rows per record batch read from Parquet
_NAMED_IN_MESSAGE = 5  # entries named in one error; the rest are counted


@dataclass(frozen=True)
class Segment:
    """``count`` rows of plan file ``file`` starting at row ``first`` of that file."""

    file: int
    first: int
    count: int


@dataclass(frozen=True)
class InputPlan:
    """The resolved input. ``files`` are fsspec paths on ``protocol``; ``names`` are the same
    files relative to the input (what outputs and errors show); ``rows`` per file for tabular."""

    uri: str
    kind: str  # "files" | "tabular"
    protocol: str
    files: list[str]
    names: list[str]
    rows: list[int] | None = None

    @property
    def total(self) -> int:
        return sum(self.rows) if self.rows is not None else len(self.files)

    @property
    def is_local(self) -> bool:
        return self.protocol in ("file", "local")

    def minibatches(self, size: int) -> list[tuple[int, int]]:
        """Item ranges ``[start, stop)`` of each mini-batch, in input order."""
        return [(start, min(start + size, self.total)) for start in range(0, self.total, size)]

    def describe(self, start: int, stop: int) -> list[str]:
        """Names of items ``[start, stop)``: file names, or ``file:row`` for table rows."""
        if self.rows is None:
            return self.names[start:stop]
        described = []
        for segment in self.segments(start, stop):
            name = self.names[segment.file]
            described += [f"{name}:{row}" for row in range(segment.first, segment.first + segment.count)]
        return described

    def segments(self, start: int, stop: int) -> list[Segment]:
        """Where table rows ``[start, stop)`` of the whole input lie in its files."""
        assert self.rows is not None
        result, offset = [], 0
        for index, count in enumerate(self.rows):
            lo, hi = max(start, offset), min(stop, offset + count)
            if lo < hi:
                result.append(Segment(index, lo - offset, hi - lo))
            offset += count
        return result

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputPlan:
        return cls(**data)


def resolve_input(uri: str, input_type: str | None, *, tabular_default: bool = False) -> InputPlan:
    """List (and for tables, count) the input at ``uri``: a folder, a file, a glob or a URL.

    Without ``input_type``, a folder is ``uri_folder`` and a file ``uri_file``, as in Azure ML,
    unless ``tabular_default`` (a no-code deployment, which only scores tables).
    """
    if input_type is not None and input_type not in INPUT_TYPES:
        raise ValidationError(f"--input-type: {input_type!r} is not one of {', '.join(INPUT_TYPES)}")
    try:
        fs, root = fsspec.core.url_to_fs(uri)
    except (ValueError, ImportError) as exc:
        raise ValidationError(f"--input: {uri!r} cannot be opened ({exc})") from None
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    files, names, is_dir = _list(fs, root, uri)
    kind = input_type or ("tabular" if tabular_default else "uri_folder" if is_dir else "uri_file")
    if kind == "uri_file" and (is_dir or len(files) != 1):
        raise ValidationError(f"--input: {uri} is not a single file; use --input-type uri_folder")
    if kind != "tabular":
        return InputPlan(uri, "files", protocol, files, names)
    rows = [_count_rows(fs, path, name) for path, name in zip(files, names)]
    return InputPlan(uri, "tabular", protocol, files, names, rows)


def _list(fs: fsspec.AbstractFileSystem, root: str, uri: str) -> tuple[list[str], list[str], bool]:
    """Files under ``root`` (sorted, hidden ones skipped) and their names relative to it.

    Only regular files (or links to them) are items: a FIFO, socket or device would block or
    never end when read, so one anywhere in the input refuses the job, naming it.
    """
    if globlib.has_magic(root):
        matched = [p for p in fs.glob(root) if not _hidden(p)]
        files = sorted(p for p in matched if fs.isfile(p))
        base = root[: min(root.find(c) for c in "*?[" if c in root)].rpartition("/")[0]
        regular = set(files)
        _refuse_irregular(fs, uri, [(p, _relative(p, base)) for p in matched if p not in regular and not fs.isdir(p)])
        if not files:
            raise ValidationError(f"--input: the pattern {uri} matches no files")
        return files, [_relative(p, base) for p in files], True
    if not fs.exists(root):
        raise ValidationError(f"--input: {uri} does not exist")
    if fs.isfile(root):
        return [root], [PurePosixPath(root).name], False
    if not fs.isdir(root):
        raise ValidationError(f"--input: {uri} is {_kind(fs, root)}, not a regular file; only regular files are read")
    found = {p: info for p, info in fs.find(root, detail=True).items() if not _hidden(_relative(p, root))}
    odd = [p for p, info in found.items() if info["type"] != "file" and not fs.isfile(p)]  # links are "other"
    _refuse_irregular(fs, uri, [(p, _relative(p, root)) for p in sorted(odd)])
    files = sorted(found)
    if not files:
        raise ValidationError(f"--input: the folder {uri} holds no files")
    return files, [_relative(p, root) for p in files], True


def _refuse_irregular(fs: fsspec.AbstractFileSystem, uri: str, paths: list[tuple[str, str]]) -> None:
    """One error naming the entries (path, name) that are not regular files, if there are any."""
    if not paths:
        return
    named = ", ".join(f"{name} ({_kind(fs, path)})" for path, name in paths[:_NAMED_IN_MESSAGE])
    more = f" and {len(paths) - _NAMED_IN_MESSAGE} more" if len(paths) > _NAMED_IN_MESSAGE else ""
    raise ValidationError(
        f"--input: {uri} holds entries that are not regular files: {named}{more}; only regular files are read"
    )


def _kind(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """What a non-regular entry is ("a FIFO"), as far as the filesystem tells."""
    try:
        info = fs.info(path)
    except OSError:
        return "a broken symbolic link"
    mode = info.get("mode")
    kind = file_kind(mode) if isinstance(mode, int) else "not a regular file"
    return f"a symbolic link to {kind}" if info.get("islink") else kind


def _relative(path: str, base: str) -> str:
    base = base.rstrip("/")
    return path[len(base) + 1 :] if base and path.startswith(base + "/") else PurePosixPath(path).name


def _hidden(path: str) -> bool:
    return any(part.startswith(".") for part in PurePosixPath(path).parts)


def table_format(name: str) -> str:
    fmt = _TABULAR_SUFFIXES.get(PurePosixPath(name).suffix.lower())
    if fmt is None:
        raise ValidationError(f"--input: {name} is not CSV, Parquet or JSONL (.csv, .parquet, .pqt, .jsonl, .json)")
    return fmt


def _count_rows(fs: fsspec.AbstractFileSystem, path: str, name: str) -> int:
    fmt = table_format(name)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            with fs.open(path, "rb") as handle:
                return int(pq.ParquetFile(handle).metadata.num_rows)
        return sum(batch.num_rows for batch in _stream(fs, path, fmt))
    except (pa.ArrowException, OSError) as exc:
        raise ValidationError(
            f"--input: {name} is not a readable {_FORMAT_NAMES[fmt]} file ({_first_line(exc)})"
        ) from None


_FORMAT_NAMES = {"csv": "CSV", "parquet": "Parquet", "jsonl": "JSON Lines"}


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _stream(fs: fsspec.AbstractFileSystem, path: str, fmt: str) -> Iterator[pa.RecordBatch]:
    """The record batches of one table file, read incrementally.

    The file was regular when the job was submitted; one replaced since by a FIFO would block
    the read for good, so it is checked again.
    """
    if isinstance(fs, LocalFileSystem) and not fs.isfile(path):
        raise ValidationError(f"--input: {path} is {_kind(fs, path)}, not a regular file; only regular files are read")
    with fs.open(path, "rb") as handle:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            # pre-buffering keeps every column chunk read until the file is closed: memory grew
            # with the file (~0.2 GB more per 10 M rows of 4 columns); without it, it stays flat
            yield from pq.ParquetFile(handle, pre_buffer=False).iter_batches(batch_size=_READ_ROWS)
        elif fmt == "csv":
            import pyarrow.csv as pcsv

            yield from pcsv.open_csv(handle)
        else:
            import pyarrow.json as pjson

            yield from pjson.open_json(handle)


def iter_tables(plan: InputPlan, size: int, wanted: set[int]) -> Iterator[tuple[int, pa.Table]]:
    """Mini-batch ``index`` and its rows as a table, for each index in ``wanted``, in input order.

    Rows are cut at exactly ``size`` across file boundaries, the cut ``plan.minibatches`` gives;
    mini-batches not wanted (already scored) are read past without being assembled.
    """
    assert plan.rows is not None
    fs, _ = fsspec.core.url_to_fs(plan.uri)
    pieces: list[pa.Table] = []
    filled, index = 0, 0
    last = max(wanted, default=-1)
    for file_index, path in enumerate(plan.files):
        fmt = table_format(plan.names[file_index])
        for batch in _stream(fs, path, fmt):
            offset = 0
            while offset < batch.num_rows:
                take = min(size - filled, batch.num_rows - offset)
                if index in wanted:
                    pieces.append(pa.Table.from_batches([batch.slice(offset, take)]))
                filled, offset = filled + take, offset + take
                if filled == size:
                    if index in wanted:
                        yield index, _concat(pieces)
                    pieces, filled, index = [], 0, index + 1
                    if index > last:
                        return
    if filled and index in wanted:
        yield index, _concat(pieces)


def _concat(pieces: list[pa.Table]) -> pa.Table:
    return pieces[0] if len(pieces) == 1 else pa.concat_tables(pieces, promote_options="permissive")
