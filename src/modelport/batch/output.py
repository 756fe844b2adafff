"""``append_row`` output: one part file per scored piece of a mini-batch, joined at the end.

Parts are named by the first input item they cover (``<start>.csv`` / ``<start>.arrow``),
so sorting names restores input order whatever order workers finished in. A part is written
under a temporary name by the worker and renamed into place by the runner when it accepts the
result; a mini-batch is marked done in the database only after all its parts are in place,
and a resumed job deletes the parts of every mini-batch that is not done before scoring it
again. That is what makes every input appear exactly once in the output.

The runner joins parts while the job runs (:class:`Assembly`): as soon as every mini-batch up
to some point is finished, their parts are appended to the output being built in the parts
folder, so that scoring's end leaves only the last parts to join, not a pass over all of them.
The joining runs in a thread of its own: Parquet encoding was most of the runner's work, and
done in the loop that feeds the workers it kept them waiting (pyarrow releases the GIL while it
reads and encodes, so the two overlap).

Formats: CSV in Azure's ``append_row`` layout (one line per returned list element, ``str()``
of it; DataFrame rows as space-separated values, no header, no index) or, when the output
file name ends in ``.parquet``, Parquet with the returned columns (a list becomes a
``prediction`` column).
"""

from __future__ import annotations

import errno
import os
import queue
import shutil
import threading
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from modelport.core.errors import ConflictError, DiskError, DiskFullError, ModelportError, ValidationError

_QUEUE_LENGTH = 64  # finished mini-batches waiting to be joined before add() waits for the thread

# The runner forks worker processes while the joining thread runs (a replacement, mid-job); a
# child forked while that thread is inside pyarrow could inherit a lock held for good. A fork
# waits for the part being appended instead, and the thread appends none while one is under way.
_NOT_FORKING = threading.Lock()
if hasattr(os, "register_at_fork"):  # not on Windows, where nothing forks
    os.register_at_fork(
        before=_NOT_FORKING.acquire, after_in_parent=_NOT_FORKING.release, after_in_child=_NOT_FORKING.release
    )


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


class Assembly:
    """The output of one run of a job, built from its parts in input order while the job runs.

    ``done`` holds the part starts of the mini-batches finished before this run (a resumed job);
    :meth:`add` hands over each mini-batch this run finishes. Parts are appended once every
    mini-batch before theirs is finished, with the same writes a join of all parts at the end
    makes, so the bytes are the same. The file grows in the parts folder under a ``.tmp`` name
    (a resumed job removes it with the other unfinished parts); :meth:`finish` puts it in place.

    The appending runs in a thread, fed through a bounded queue, so the caller only hands over
    part names. A part that cannot be joined for its columns fails the job at :meth:`finish`,
    as a join at the end would; any other failure of the thread (a part gone, a full disk) is
    raised by the next :meth:`add` or by :meth:`finish`, as one line. The thread never stops
    taking from the queue before it is told to, so the caller never waits on a dead thread.
    """

    def __init__(self, parts_dir: Path, output: Path, done: dict[int, list[int]], suffix: str) -> None:
        self.parts_dir, self.output, self.suffix = parts_dir, output, suffix
        self.temporary = parts_dir / f"{output.name}.tmp"
        self._parquet = output.name.endswith(".parquet")
        self._ready = dict(done)
        self._next = 0
        self._handle: BinaryIO | None = None  # CSV: the bytes of the parts, one after another
        self._writer: Any = None  # Parquet: a pq.ParquetWriter, from the first part on
        self._schema: pa.Schema | None = None
        self._error: ValidationError | None = None  # results that do not fit one table
        self._failure: ModelportError | None = None  # the thread could not go on
        self._stopping = False  # close() before finish(): the parts still queued are not joined
        self._queue: queue.Queue[tuple[int, list[int]] | None] = queue.Queue(_QUEUE_LENGTH)
        self._thread = threading.Thread(target=self._join_parts, name="output-assembly", daemon=True)
        self._thread.start()

    def add(self, index: int, starts: list[int]) -> None:
        """Mini-batch ``index`` is finished and its parts (by first item) are in place."""
        if self._failure is not None:
            raise self._failure
        self._queue.put((index, starts))

    def finish(self, overwrite: bool) -> int:
        """Join what is left and put the output in place, atomically: the temporary file is
        renamed (or, without ``overwrite``, hard-linked, which fails rather than replace a file
        that appeared meanwhile). Returns the number of bytes written."""
        self._stop()
        if self._failure is not None:
            self.close()
            raise self._failure
        try:
            for index in sorted(self._ready):  # only when parts went missing behind the job's back
                self._next = index
                self._advance()
        except OSError as exc:
            self.close()
            raise _failed(exc) from None
        if self._parquet and self._writer is None and self._error is None:
            import pyarrow.parquet as pq

            pq.write_table(pa.table({}), str(self.temporary))  # no part at all: an empty table
        elif not self._parquet:
            self._csv()
        self.close()
        check_free(self.output, overwrite)
        self.output.parent.mkdir(parents=True, exist_ok=True)
        if self._error is not None:
            raise self._error
        _place(self.temporary, self.output, overwrite)
        return self.output.stat().st_size

    def close(self) -> None:
        """Stop the thread and close the file being built (the job ends here, whatever its outcome)."""
        self._stopping = True
        self._stop()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _stop(self) -> None:
        """Let the thread join what is queued (unless closing) and end."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _join_parts(self) -> None:
        item: tuple[int, list[int]] | None = (-1, [])  # first: the parts done before this run
        while item is not None:
            if self._failure is None and not self._stopping:
                try:
                    if item[0] >= 0:
                        self._ready[item[0]] = item[1]
                    self._advance()
                except Exception as exc:  # noqa: BLE001 - reported by add() or finish()
                    self._failure = _failed(exc)
            item = self._queue.get()

    def _advance(self) -> None:
        while self._next in self._ready and not self._stopping:
            for start in sorted(self._ready.pop(self._next)):
                self._append(self.parts_dir / part_name(start, self.suffix))
            self._next += 1

    def _csv(self) -> BinaryIO:
        if self._handle is None:
            self._handle = open(self.temporary, "wb")  # noqa: SIM115 - closed by close()
        return self._handle

    def _append(self, part: Path) -> None:
        with _NOT_FORKING:
            self._append_part(part)

    def _append_part(self, part: Path) -> None:
        if not self._parquet:
            with open(part, "rb") as source:
                shutil.copyfileobj(source, self._csv(), 1 << 20)
            return
        import pyarrow.parquet as pq

        if self._error is not None:
            return
        table = pa.ipc.open_file(str(part)).read_all()
        if self._writer is None:
            self._schema = table.schema
            self._writer = pq.ParquetWriter(str(self.temporary), table.schema)
        try:
            self._writer.write_table(table.cast(self._schema))
        except (pa.ArrowException, ValueError) as exc:
            self._error = ValidationError(f"output: run() results have different columns or types ({exc})")


def _failed(exc: BaseException) -> ModelportError:
    """A failure of the join as the job's one-line reason."""
    if isinstance(exc, ModelportError):
        return exc
    reason = f"output: joining the parts failed ({type(exc).__name__}: {exc})"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return DiskFullError(reason)
    return DiskError(reason) if isinstance(exc, OSError) else ModelportError(reason)


def _place(temporary: Path, output: Path, overwrite: bool) -> None:
    """Move the built output into place; across file systems via a temporary copy beside it."""
    beside = temporary
    if temporary.stat().st_dev != output.parent.stat().st_dev:
        beside = output.with_name(f".{output.name}.{os.getpid()}.tmp")
        shutil.copyfile(temporary, beside)
    try:
        if overwrite:
            os.replace(beside, output)
        else:
            try:
                os.link(beside, output)
            except FileExistsError:
                raise ConflictError(f"output: {output} appeared while the job ran; not overwritten") from None
    finally:
        beside.unlink(missing_ok=True)
        temporary.unlink(missing_ok=True)
