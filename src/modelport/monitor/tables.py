"""The tables drift compares: files, folders of files, and payload collected by deployments.

A baseline or a target is a Parquet, CSV or JSONL file, or a folder of them (recursive, hidden
files skipped). A target may also be ``ENDPOINT/DEPLOYMENT`` (exactly one ``/``, not an existing
path): the payload an online deployment collected under

    <workspace>/collected/<endpoint>/<deployment>/<model_inputs|model_outputs>/YYYY/MM/DD/HH/<file>

as Parquet (one row per instance: ``request_id``, ``time``, ``row``, then the features) or as
JSONL in Azure's data-collector layout (one event per line whose ``data`` is a list of row
records; ``request_id`` comes from ``correlationid``, ``time`` from the event). Inputs and
outputs are joined on (``request_id``, ``row``); output columns are the predictions, and one
whose name is also an input column is renamed ``<name>_output``.

Collected files may still be being written: a JSONL file's last line that does not parse is
left out, and a Parquet file that cannot be opened is skipped with a warning when it changed in
the last ``FRESH_SECONDS``; anything else unreadable is an error naming the option and the file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from modelport.core.durations import parse_duration
from modelport.core.errors import ValidationError
from modelport.core.names import validate_name
from modelport.schema.choices import CollectionName

SUFFIXES = {".parquet": "parquet", ".pqt": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
JOIN_KEYS = ["request_id", "row"]
FRESH_SECONDS = 5.0
_FORMAT_NAMES = {"parquet": "Parquet", "csv": "CSV", "jsonl": "JSON Lines"}


@dataclass
class LoadedTable:
    """A table read for comparison: where it came from, which columns are model outputs, and
    warnings about files left out (the CLI prints them on stderr)."""

    frame: pd.DataFrame
    source: str
    predictions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_table(path: str | Path, option: str) -> LoadedTable:
    """Read a file or a folder of files into one frame; errors name ``option`` and the file."""
    root = Path(path)
    if not root.exists():
        raise ValidationError(f"{option}: {path} does not exist")
    if root.is_dir():
        files = sorted(
            p
            for p in root.rglob("*")
            if p.is_file()
            and p.suffix.lower() in SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        if not files:
            raise ValidationError(f"{option}: the folder {path} holds no CSV, Parquet or JSONL files")
    else:
        files = [root]
    frame = _concat([read_file(file, option) for file in files])
    if len(frame) == 0 or len(frame.columns) == 0:
        raise ValidationError(f"{option}: {path} holds no rows")
    return LoadedTable(frame, str(path))


def read_file(path: Path, option: str, *, tolerant: bool = False) -> pd.DataFrame:
    """One table file. ``tolerant``: leave out a JSONL file's unparsable last line (being written)."""
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ValidationError(f"{option}: {path} is not CSV, Parquet or JSONL ({', '.join(SUFFIXES)})")
    if fmt == "jsonl":
        return read_jsonl(path, option, tolerant=tolerant)
    try:
        frame = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
    except Exception as exc:  # pyarrow, pandas and OS errors all mean the same here
        raise ValidationError(
            f"{option}: {path} is not a readable {_FORMAT_NAMES[fmt]} file ({_first_line(exc)})"
        ) from None
    frame.columns = [str(name) for name in frame.columns]
    return frame


def read_jsonl(path: Path, option: str, *, tolerant: bool = False) -> pd.DataFrame:
    """JSON Lines: one row per object, or Azure data-collector events expanded into their rows."""
    try:
        lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    except OSError as exc:
        raise ValidationError(f"{option}: {path} cannot be read ({exc.strerror})") from None
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if tolerant and number == len(lines):
                break  # the writer has not finished this line yet
            raise ValidationError(f"{option}: {path} line {number} is not JSON ({exc})") from None
        if not isinstance(item, dict):
            raise ValidationError(f"{option}: {path} line {number} is not a JSON object")
        rows += _event_rows(item, path, number, option) if _is_event(item) else [item]
    frame = pd.DataFrame.from_records(rows).infer_objects()
    frame.columns = [str(name) for name in frame.columns]
    return frame


def load_target(
    spec: str,
    workspace_root: Callable[[], Path],
    *,
    since: timedelta | None = None,
    since_text: str | None = None,
    now: datetime | None = None,
) -> LoadedTable:
    """``--target``: a path, or ``ENDPOINT/DEPLOYMENT``'s collected payload (the workspace is
    opened only then), keeping rows of the last ``since`` when given."""
    now = now or datetime.now(timezone.utc)
    if _is_deployment(spec):
        endpoint, deployment = spec.split("/")
        table = read_collected(workspace_root(), endpoint, deployment, since=since, since_text=since_text, now=now)
    else:
        table = read_table(spec, "--target")
    if since is not None:
        table.frame = keep_since(table.frame, since, now, since_text or f"{since}")
    return table


def read_collected(
    root: Path,
    endpoint: str,
    deployment: str,
    *,
    since: timedelta | None = None,
    since_text: str | None = None,
    now: datetime | None = None,
) -> LoadedTable:
    """A deployment's collected inputs joined with its outputs; hour folders wholly older than
    ``since`` are not read at all."""
    base = root / "collected" / endpoint / deployment
    source = f"{endpoint}/{deployment}"
    listed = {collection: _hour_files(base / collection) for collection in CollectionName}
    if not any(listed.values()):
        raise ValidationError(
            f"--target: no payload collected for {source} under {base} (and no such file or folder); "
            "enable data_collector in deployment.yml"
        )
    cutoff = (now or datetime.now(timezone.utc)) - since if since is not None else None
    table = LoadedTable(pd.DataFrame(), source)
    frames: dict[str, pd.DataFrame] = {}
    for collection, files in listed.items():
        pieces = []
        for hour, file in files:
            if cutoff is not None and hour + timedelta(hours=1) <= cutoff:
                continue
            piece = _read_collected_file(file, table.warnings)
            if piece is not None and len(piece):
                pieces.append(_with_utc_time(piece, file))
        if pieces:
            frames[collection] = _concat(pieces)
    if not frames and since is not None:
        raise ValidationError(
            f"--since: nothing collected for {source} in the last {since_text or since} (under {base})"
        )
    if not frames:
        raise ValidationError(f"--target: no rows readable yet in what {source} collected (under {base})")
    inputs, outputs = frames.get("model_inputs"), frames.get("model_outputs")
    if outputs is None:
        table.frame = frames["model_inputs"]
    else:
        table.predictions = [name for name in outputs.columns if name not in (*JOIN_KEYS, "time")]
        table.frame = outputs if inputs is None else _join(inputs, outputs, source)
        if inputs is not None:
            clash = set(table.predictions) & set(inputs.columns)
            table.predictions = [f"{name}_output" if name in clash else name for name in table.predictions]
    return table


def parse_since(text: str) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d`` → a positive timedelta."""
    return timedelta(seconds=parse_duration(text, "--since", "90s, 30m, 24h or 7d"))


def keep_since(frame: pd.DataFrame, since: timedelta, now: datetime, since_text: str) -> pd.DataFrame:
    """Rows whose ``time`` is at or after ``now - since``; an empty result is an error."""
    if "time" not in frame.columns:
        raise ValidationError("--since: the target has no time column to filter on")
    times = _utc(frame["time"], "--since: the target's time column")
    kept = frame[(times >= pd.Timestamp(now - since)).to_numpy()].reset_index(drop=True)
    if len(kept) == 0:
        raise ValidationError(f"--since: none of the target's {len(frame)} rows is from the last {since_text}")
    return kept


# -- collected payload ---------------------------------------------------------------------------


def _is_deployment(spec: str) -> bool:
    """``ENDPOINT/DEPLOYMENT``: one ``/``, valid names, not an existing path, no table suffix."""
    if Path(spec).exists() or spec.count("/") != 1 or Path(spec).suffix.lower() in SUFFIXES:
        return False
    try:
        for part in spec.split("/"):
            validate_name(part, "--target")
    except ValidationError:
        return False
    return True


def _hour_files(folder: Path) -> list[tuple[datetime, Path]]:
    """Files under ``YYYY/MM/DD/HH/`` with the start of their hour, oldest first."""
    found = []
    for file in folder.glob("*/*/*/*/*"):
        if not file.is_file() or file.name.startswith(".") or file.suffix.lower() not in (".parquet", ".jsonl"):
            continue
        try:
            year, month, day, hour = (int(part) for part in file.relative_to(folder).parts[:4])
            start = datetime(year, month, day, hour, tzinfo=timezone.utc)
        except ValueError:
            continue  # not the collector's layout
        found.append((start, file))
    return sorted(found)


def _read_collected_file(file: Path, warnings: list[str]) -> pd.DataFrame | None:
    if file.suffix.lower() == ".jsonl":
        return read_jsonl(file, "--target", tolerant=True)
    try:
        frame = pd.read_parquet(file)
    except Exception as exc:
        if _age(file) < FRESH_SECONDS:
            warnings.append(f"skipped {file}: still being written ({_first_line(exc)})")
            return None
        raise ValidationError(f"--target: {file} is not a readable Parquet file ({_first_line(exc)})") from None
    frame.columns = [str(name) for name in frame.columns]
    return frame


def _join(inputs: pd.DataFrame, outputs: pd.DataFrame, source: str) -> pd.DataFrame:
    """Inputs and outputs of the same instances side by side (outer join: an instance whose
    output is not written yet still counts for its inputs)."""
    for collection, frame in (("model_inputs", inputs), ("model_outputs", outputs)):
        if any(key not in frame.columns for key in JOIN_KEYS):
            raise ValidationError(f"--target: collected {collection} of {source} lack request_id/row columns")
    outputs = outputs.drop_duplicates(JOIN_KEYS, keep="last")
    joined = inputs.merge(outputs, on=JOIN_KEYS, how="outer", suffixes=("", "_output"), sort=False)
    if "time_output" in joined.columns:
        joined["time"] = (
            joined["time"].combine_first(joined["time_output"]) if "time" in joined else joined["time_output"]
        )
        joined = joined.drop(columns="time_output")
    return joined


def _is_event(item: dict[str, Any]) -> bool:
    return "data" in item and ("specversion" in item or "correlationid" in item)


def _event_rows(event: dict[str, Any], path: Path, number: int, option: str) -> list[dict[str, Any]]:
    data = event["data"]
    records = [data] if isinstance(data, dict) else data
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise ValidationError(f"{option}: {path} line {number}: data is not a list of row records")
    request_id = event.get("correlationid") or event.get("xrequestid") or event.get("id")
    rows = []
    for index, record in enumerate(records):
        row: dict[str, Any] = {"request_id": request_id, "time": event.get("time"), "row": index}
        row.update((key, value) for key, value in record.items() if key not in row)
        rows.append(row)
    return rows


def _with_utc_time(frame: pd.DataFrame, file: Path) -> pd.DataFrame:
    if "time" in frame.columns:
        frame["time"] = _utc(frame["time"], f"--target: {file}'s time column")
    return frame


def _utc(times: pd.Series, what: str) -> pd.Series:
    """Timestamps in UTC: aware ones converted, naive ones taken as UTC, strings ISO 8601."""
    try:
        if pd.api.types.is_datetime64_any_dtype(times):
            return times.dt.tz_convert("UTC") if times.dt.tz is not None else times.dt.tz_localize("UTC")
        if pd.api.types.is_numeric_dtype(times):
            return pd.to_datetime(times, unit="s", utc=True)
        return pd.to_datetime(times, utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"{what} does not hold timestamps ({_first_line(exc)})") from None


# -- helpers -------------------------------------------------------------------------------------


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [frame for frame in frames if len(frame.columns)]
    if not frames:
        return pd.DataFrame()
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True, sort=False)


def _age(file: Path) -> float:
    try:
        return time.time() - file.stat().st_mtime
    except OSError:
        return 0.0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
