"""``append_row`` output: one part file per scored piece of a mini-batch, joined at the end.

Parts are named by the first input item they cover (``<start>.csv`` / ``<start>.arrow``),
so sorting names restores input order whatever order workers finished in. A part is written
under a temporary name by the worker and renamed into place by the runner when it accepts the
result; a mini-batch is marked done in the database only after all its parts are in place,
and a resumed job deletes the parts of every mini-batch that is not done before scoring it
again. That is what makes every input appear exactly once in the output.

Formats: CSV in Azure's ``append_row`` layout (one line per returned list element, ``str()``
of it; DataFrame rows as space-separated values, no header, no index) or, when the output
file name ends in ``.parquet``, Parquet with the returned columns (a list becomes a
``prediction`` column).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from modelport.core.errors import ConflictError, ValidationError


def part_suffix(output_file_name: str) -> str:
    return ".arrow" if output_file_name.endswith(".parquet") else ".csv"


def part_name(start: int, suffix: str) -> str:
    return f"{start:012d}{suffix}"


def part_start(name: str) -> int:
    return int(name.split(".", 1)[0])


def result_count(result: Any) -> int:
    """How many items ``run()`` returned: list elements or table rows; anything else is an error."""
    if isinstance(result, (list, tuple)):
        return len(result)
    if isinstance(result, pa.Table):
        return result.num_rows
    if _is_frame(result):
        return len(result)
    raise ValidationError(f"run() returned {type(result).__name__}; it must return a list or a pandas DataFrame")


def _is_frame(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "to_csv")


def write_part(result: Any, path: Path) -> None:
    """Write one result in the part format that ``path``'s suffix names."""
    if path.name.split(".")[1] == "csv":
        _write_csv(result, path)
    else:
        _write_arrow(_as_table(result), path)


def _write_csv(result: Any, path: Path) -> None:
    if isinstance(result, pa.Table):
        result = result.to_pandas()
    if _is_frame(result):
        result.to_csv(path, sep=" ", header=False, index=False)
        return
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{element}\n" for element in result)


def _as_table(result: Any) -> pa.Table:
    if isinstance(result, pa.Table):
        return result
    if _is_frame(result):
        return pa.Table.from_pandas(result, preserve_index=False)
    try:
        return pa.table({"prediction": pa.array(list(result))})
    except (pa.ArrowException, TypeError, ValueError):  # mixed types: keep each element's text
        return pa.table({"prediction": pa.array([str(element) for element in result])})


def _write_arrow(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def check_free(output: Path, overwrite: bool) -> None:
    if output.exists() and not overwrite:
        raise ConflictError(f"output: {output} already exists; choose another --output-path or pass --overwrite")


def assemble(parts_dir: Path, output: Path, overwrite: bool) -> int:
    """Join the parts in input order into ``output``, atomically: a temporary file is renamed
    (or, without ``overwrite``, hard-linked, which fails rather than replace a file that
    appeared meanwhile). Returns the number of bytes written."""
    check_free(output, overwrite)
    output.parent.mkdir(parents=True, exist_ok=True)
    parts = sorted(p for p in parts_dir.iterdir() if not p.name.endswith(".tmp")) if parts_dir.exists() else []
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        if output.name.endswith(".parquet"):
            _join_parquet(parts, temporary)
        else:
            _join_bytes(parts, temporary)
        if overwrite:
            os.replace(temporary, output)
        else:
            try:
                os.link(temporary, output)
            except FileExistsError:
                raise ConflictError(f"output: {output} appeared while the job ran; not overwritten") from None
        return output.stat().st_size
    finally:
        temporary.unlink(missing_ok=True)


def _join_bytes(parts: list[Path], target: Path) -> None:
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    out.write(chunk)


def _join_parquet(parts: list[Path], target: Path) -> None:
    import pyarrow.parquet as pq

    tables = (pa.ipc.open_file(str(part)).read_all() for part in parts)
    first = next(tables, None)
    if first is None:
        pq.write_table(pa.table({}), target)
        return
    schema = first.schema
    with pq.ParquetWriter(target, schema) as writer:
        writer.write_table(first)
        for table in tables:
            try:
                writer.write_table(table.cast(schema))
            except (pa.ArrowException, ValueError) as exc:
                raise ValidationError(f"output: run() results have different columns or types ({exc})") from None
