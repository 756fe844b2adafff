"""``modelport monitor drift`` as users run it: files, a deployment's collected payload,
``--since``, bad inputs, and the HTML report rendered by headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import Cli, ok

from modelport.core.errors import ValidationError
from modelport.monitor.report import BASELINE_COLOR, TARGET_COLOR
from modelport.monitor.tables import keep_since, load_target, parse_since, read_collected, read_table

N = 2000


def _frames(seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``shifted`` moves by one sigma, ``reweighted`` changes its category mix, ``steady`` stays."""
    rng = np.random.default_rng(seed)
    cats = np.array(["low", "mid", "high"])
    baseline = pd.DataFrame(
        {
            "shifted": rng.normal(0, 1, N),
            "reweighted": rng.choice(cats, N, p=[0.5, 0.3, 0.2]),
            "steady": rng.normal(50, 5, N),
        }
    )
    target = pd.DataFrame(
        {
            "shifted": rng.normal(1, 1, N),
            "reweighted": rng.choice(cats, N, p=[0.2, 0.3, 0.5]),
            "steady": rng.normal(50, 5, N),
        }
    )
    return baseline, target


def _run_all(cli: Cli, runs: Sequence[Sequence[object]]) -> list[subprocess.CompletedProcess[str]]:
    """Independent CLI runs side by side: each start costs about a second of imports."""
    with ThreadPoolExecutor(max_workers=min(len(runs), os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda args: cli(*map(str, args)), runs))


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("drift")
    baseline, target = _frames()
    baseline.to_parquet(root / "train.parquet")
    target.to_csv(root / "target.csv", index=False)
    return {"root": root, "baseline": root / "train.parquet", "target": root / "target.csv"}


@pytest.fixture(scope="module")
def json_run(files: dict[str, Path]) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One run shared by the JSON, HTML and screenshot tests (a CLI start costs about a second)."""
    cli = Cli(files["root"] / "ws")
    report = files["root"] / "report.html"
    result = cli(
        "monitor",
        "drift",
        "--baseline",
        files["baseline"],
        "--target",
        files["target"],
        "--html",
        report,
        "-o",
        "json",
        "--fail-on-drift",
    )
    return result, report


def test_table_for_people(files: dict[str, Path], tmp_path: Path) -> None:
    cli = Cli(tmp_path / "ws")
    out = ok(cli("monitor", "drift", "--baseline", files["baseline"], "--target", files["target"]))
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    assert rows["shifted"][1:4] == ["feature", "numeric", "NWD"] and rows["shifted"][-1] == "yes"
    assert rows["reweighted"][1:4] == ["feature", "categorical", "JSD"] and rows["reweighted"][-1] == "yes"
    assert rows["steady"][-1] == "no"
    assert f"baseline {N} rows, target {N} rows" in out
    assert out.strip().splitlines()[-1] == "drift: 2 of 3 columns over their threshold (shifted, reweighted)"
    assert not (tmp_path / "ws").exists()  # a file target never opens the workspace


def test_json_document_and_fail_on_drift(json_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, report = json_run
    data = json.loads(ok(result, 3))  # drift found and --fail-on-drift: exit 3, the document still printed
    assert data["verdict"] == "drift" and data["drifted"] == ["shifted", "reweighted"]
    assert data["baseline"]["rows"] == data["target"]["rows"] == N
    assert data["thresholds"] == {"numerical": 0.1, "categorical": 0.1}
    features = {f["name"]: f for f in data["features"]}
    assert features["shifted"]["value"] == pytest.approx(1.0, abs=0.1)
    assert features["shifted"]["metrics"]["ks_pvalue"] < 1e-6
    assert features["reweighted"]["metrics"]["chi2_pvalue"] < 1e-6
    assert not features["steady"]["drifted"] and features["steady"]["value"] < 0.1
    assert f"report written to {report}" in result.stderr


def test_html_report_is_self_contained(json_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, report = json_run
    html = report.read_text()
    assert html.count("<svg") == 3
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert "shifted" in html and "Drift: 2 of 3 columns" in html


def test_report_screenshot_in_headless_chromium(
    json_run: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium binary on PATH (scripts/test.sh installs it when run as root)")
    _, report = json_run
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-color-profile=srgb",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,2000",
            f"--screenshot={shot}",
            report.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.exists(), "chromium wrote no screenshot"
    pixels = decode_png(shot.read_bytes())
    assert pixels.shape[:2] == (2000, 1200)
    rgb = pixels[..., :3].astype(np.uint32)
    packed = (rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]).ravel()
    assert len(np.unique(packed)) > 50, "the screenshot is blank"
    for color in (BASELINE_COLOR, TARGET_COLOR):  # the bars and legends of the plots were drawn
        assert (packed == int(color[1:], 16)).sum() > 1000, f"no {color} bars in the screenshot"


# -- a deployment's collected payload ------------------------------------------------------------


def _hour_dir(ws: Path, collection: str, when: datetime) -> Path:
    folder = ws / "collected" / "fraud" / "blue" / collection / when.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _collect(ws: Path, when: datetime, inputs: pd.DataFrame, scores: np.ndarray, prefix: str) -> None:
    """Half the requests as Parquet rows, half as Azure data-collector JSONL events (4 rows each);
    the JSONL file ends with a line still being written."""
    meta = pd.DataFrame(
        {
            "request_id": [f"{prefix}-{i // 4}" for i in range(len(inputs))],
            "time": pd.Timestamp(when),
            "row": np.arange(len(inputs)) % 4,
        }
    )
    half = (len(inputs) // 8) * 4
    pd.concat([meta, inputs], axis=1)[:half].to_parquet(_hour_dir(ws, "model_inputs", when) / f"{prefix}.parquet")
    outputs = meta.assign(score=scores)
    outputs[:half].to_parquet(_hour_dir(ws, "model_outputs", when) / f"{prefix}.parquet")
    for collection, frame in (("model_inputs", pd.concat([meta, inputs], axis=1)), ("model_outputs", outputs)):
        lines = []
        for request_id, group in frame[half:].groupby("request_id", sort=False):
            records = group.drop(columns=["request_id", "time", "row"]).to_dict("records")
            lines.append(
                json.dumps(
                    {
                        "specversion": "1.0",
                        "id": f"ev-{request_id}",
                        "source": "/fraud/blue",
                        "type": f"azureml.inference.{collection}",
                        "datacontenttype": "application/json",
                        "time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "data": records,
                        "correlationid": request_id,
                        "xrequestid": request_id,
                        "modelversion": "1",
                    }
                )
            )
        text = "\n".join(lines) + '\n{"specversion": "1.0", "data": [{"x_0": 1.'
        (_hour_dir(ws, collection, when) / f"{prefix}.jsonl").write_text(text)


def test_deployment_target_joins_inputs_and_outputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    ws = tmp_path / "ws"
    baseline = pd.DataFrame({"x_0": rng.normal(0, 1, N), "x_1": rng.normal(0, 1, N), "score": rng.uniform(0, 1, N)})
    baseline.to_parquet(tmp_path / "train.parquet")
    now = datetime.now(timezone.utc)
    recent = pd.DataFrame({"x_0": rng.normal(1, 1, 800), "x_1": rng.normal(0, 1, 800)})
    _collect(ws, now, recent, rng.uniform(0, 1, 800), "recent")
    old = pd.DataFrame({"x_0": rng.normal(1, 1, 800), "x_1": rng.normal(5, 1, 800)})  # x_1 drifted 3 days ago
    _collect(ws, now - timedelta(days=3), old, rng.uniform(0, 1, 800), "old")
    fresh_broken = _hour_dir(ws, "model_inputs", now) / "writing.parquet"
    fresh_broken.write_bytes(b"PAR1 not yet complete")

    cli = Cli(ws)
    args = ["monitor", "drift", "--baseline", tmp_path / "train.parquet", "--target", "fraud/blue", "-o", "json"]
    # "just written" (dated a minute ahead so that a slow machine cannot age it past FRESH_SECONDS):
    # a Parquet file still being written is skipped with a warning
    os.utime(fresh_broken, (time.time() + 60, time.time() + 60))
    everything, last_day = _run_all(cli, [args, [*args, "--since", "24h"]])
    data = json.loads(ok(everything))
    assert data["target"] == {"source": "fraud/blue", "rows": 1600, "since": None}
    assert "warning: skipped" in everything.stderr and "writing.parquet" in everything.stderr
    features = {f["name"]: f for f in data["features"]}
    assert {name: f["kind"] for name, f in features.items()} == {
        "x_0": "feature",
        "x_1": "feature",
        "score": "prediction",
    }
    assert features["score"]["target_count"] == 1600 and not features["score"]["drifted"]
    assert data["drifted"] == ["x_0", "x_1"]

    last_day = json.loads(ok(last_day))
    assert last_day["target"]["rows"] == 800 and last_day["target"]["since"] == "24h"
    assert last_day["drifted"] == ["x_0"]

    os.utime(fresh_broken, (time.time() - 60, time.time() - 60))  # no longer being written: an error
    with pytest.raises(ValidationError, match=r"--target: .*writing\.parquet is not a readable Parquet file"):
        read_collected(ws, "fraud", "blue")  # in-process: the CLI's error path is covered below


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_reads_what_the_collector_writes(tmp_path: Path, fmt: str) -> None:
    """In-process, against modelport's own payload collector: both formats, inputs joined with outputs."""
    from modelport.monitor.collector import Collected, CollectorSettings, PayloadCollector

    collector = PayloadCollector(
        CollectorSettings(directory=tmp_path / "collected" / "fraud" / fmt, format=fmt), source="fraud/" + fmt
    )
    rng = np.random.default_rng(2)
    for i in range(10):
        x = rng.normal(size=(4, 3)).astype(np.float32)
        collector.submit(Collected(request_id=f"r{i}", time=time.time(), inputs={"x": x}, outputs={"x": x.sum(1)}))
    collector.close()
    table = read_collected(tmp_path, "fraud", fmt)
    assert list(table.frame.columns) == ["request_id", "time", "row", "x_0", "x_1", "x_2", "x"]
    assert table.predictions == ["x"] and len(table.frame) == 40  # the output named like the input tensor
    np.testing.assert_allclose(table.frame[["x_0", "x_1", "x_2"]].sum(axis=1), table.frame["x"], rtol=1e-5)


def test_since_on_a_file_target(tmp_path: Path) -> None:
    baseline, target = _frames()
    baseline.to_parquet(tmp_path / "train.parquet")
    now = pd.Timestamp.now(tz="UTC")
    target["time"] = [now - pd.Timedelta(minutes=10) if i < 500 else now - pd.Timedelta(days=2) for i in range(N)]
    target.to_parquet(tmp_path / "target.parquet")
    cli = Cli(tmp_path / "ws")
    lenient = ["--threshold", "numerical=2", "--threshold", "categorical=0.5", "--fail-on-drift"]
    data = json.loads(
        ok(
            cli(
                "monitor",
                "drift",
                "--baseline",
                tmp_path / "train.parquet",
                "--target",
                tmp_path / "target.parquet",
                "--since",
                "30m",
                "-o",
                "json",
                *lenient,
            )
        )
    )
    assert data["target"]["rows"] == 500 and "time" not in {f["name"] for f in data["features"]}
    assert data["thresholds"] == {"numerical": 2.0, "categorical": 0.5}
    assert data["verdict"] == "no_drift" and data["drifted"] == []  # so --fail-on-drift exits 0


BAD_INPUTS = [
    (
        ["--baseline", "{root}/missing.parquet", "--target", "{target}"],
        ["--baseline", "missing.parquet", "does not exist"],
    ),
    (["--baseline", "{baseline}", "--target", "{corrupt}"], ["--target", "corrupt.parquet", "not a readable Parquet"]),
    (["--baseline", "{baseline}", "--target", "{target}", "--features", "shifted,nope"], ["--features", "'nope'"]),
    (["--baseline", "{baseline}", "--target", "{target}", "--threshold", "ordinal=1"], ["--threshold", "'ordinal'"]),
]


def test_bad_inputs_are_one_error_line(files: dict[str, Path]) -> None:
    root = files["root"]
    (root / "corrupt.parquet").write_bytes(b"PAR1\x00\x01 definitely not parquet")
    subst = {
        "{baseline}": str(files["baseline"]),
        "{target}": str(files["target"]),
        "{corrupt}": str(root / "corrupt.parquet"),
    }
    runs = [
        ["monitor", "drift", *(subst.get(a, a.replace("{root}", str(root))) for a in args)] for args, _ in BAD_INPUTS
    ]
    for (args, needles), result in zip(BAD_INPUTS, _run_all(Cli(root / "ws-errors"), runs)):
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        _one_line_error(result, *needles)


@pytest.mark.parametrize(
    ("call", "needles"),
    [
        (lambda root: parse_since("soon"), ["--since", "'soon'"]),
        (lambda root: parse_since("0h"), ["--since", "positive duration"]),
        (
            lambda root: read_table(_write(root / "empty.csv", "a,b\n"), "--baseline"),
            ["--baseline", "empty.csv", "no rows"],
        ),
        (
            lambda root: read_table(_write(root / "notes.txt", "x"), "--baseline"),
            ["--baseline", "notes.txt", "not CSV"],
        ),
        (
            lambda root: read_table(_write(root / "bad.jsonl", '{"a": 1}\n{"a": \n{"a": 3}\n'), "--target"),
            ["--target", "bad.jsonl line 2 is not JSON"],
        ),
        (lambda root: read_table(root, "--target"), ["--target", "holds no CSV, Parquet or JSONL files"]),
        (
            lambda root: load_target("fraud/green", lambda: root),
            ["--target", "no payload collected for fraud/green under", "enable data_collector in deployment.yml"],
        ),
        (lambda root: load_target("fraud/green.csv", lambda: root), ["--target", "fraud/green.csv does not exist"]),
        (
            lambda root: keep_since(pd.DataFrame({"a": [1]}), timedelta(hours=1), datetime.now(timezone.utc), "1h"),
            ["--since", "no time column"],
        ),
        (
            lambda root: keep_since(
                pd.DataFrame({"time": ["yesterday"]}), timedelta(hours=1), datetime.now(timezone.utc), "1h"
            ),
            ["--since", "does not hold timestamps"],
        ),
    ],
)
def test_reading_errors_name_the_option(tmp_path: Path, call, needles: list[str]) -> None:  # noqa: ANN001
    """The same one-line errors, checked in-process: reading rules need no CLI start each."""
    with pytest.raises(ValidationError) as caught:
        call(tmp_path)
    for needle in needles:
        assert needle in str(caught.value)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- PNG -----------------------------------------------------------------------------------------


def decode_png(data: bytes) -> np.ndarray:
    """A non-interlaced 8-bit RGB(A) PNG as a (height, width, channels) array, checking every
    chunk's CRC; written here so that the test needs no imaging library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, width * bpp + 1)
    rows, prev = [], np.zeros(width * bpp, np.uint8)
    for line in raw:
        kind, line = line[0], line[1:]
        if kind == 0:
            prev = line.copy()
        elif kind == 1:  # Sub: a running sum per channel, modulo 256
            prev = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:  # Up
            prev = line + prev
        else:
            prev = _unfilter_sequential(kind, line, prev, bpp)
        rows.append(prev)
    return np.stack(rows).reshape(height, width, bpp)


def _unfilter_sequential(kind: int, line: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """Average (3) and Paeth (4) depend on the byte just decoded: one byte at a time."""
    cur, up = bytearray(line.tobytes()), prev.tobytes()
    for i in range(len(cur)):
        a, b = (cur[i - bpp] if i >= bpp else 0), up[i]
        if kind == 3:
            predicted = (a + b) >> 1
        else:
            c = up[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            predicted = a if pa <= pb and pa <= pc else b if pb <= pc else c
        cur[i] = (cur[i] + predicted) & 0xFF
    return np.frombuffer(bytes(cur), np.uint8)
