"""Nothing lost, nothing left, nothing shown to others: the workspace on disk, through the CLI.

Private modes after a realistic flow, a full disk in a small tmpfs (a private mount namespace,
where permitted), kill -9 during a large registration, refused writes, and downloads that are
copies rather than links into the store.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import Cli, Server, ok

from modelport.core import files
from modelport.samples import build_mlp_onnx

DROP_ROOT_RIGHTS = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "internal error" not in lines[0], lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _temps(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if ".tmp-" in path.name]


def _loose(folder: Path) -> list[str]:
    """Everything under ``folder`` (itself included) that grants its group or others anything."""
    found = []
    for path in [folder, *folder.rglob("*")]:
        mode = os.lstat(path).st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            found.append(f"{oct(stat.S_IMODE(mode))} {path.relative_to(folder.parent)}")
    return found


def test_workspace_is_private_after_a_realistic_flow(sqlite_cli: Cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    model = build_mlp_onnx(tmp_path / "m" / "model.onnx")
    ok(sqlite_cli("model", "register", model, "--name", "fraud"))
    cached = Path(ok(sqlite_cli("model", "path", "fraud")).strip())
    assert cached.is_relative_to(ws) and stat.S_IMODE(cached.stat().st_mode) == 0o400  # a read-only blob link
    ok(sqlite_cli("model", "download", "fraud", "--to", tmp_path / "out"))
    (tmp_path / "requirements.txt").write_text("numpy\n")
    ok(sqlite_cli("environment", "create", "--name", "env", "--file", tmp_path / "requirements.txt"))
    collector = {"collections": {"model_inputs": {"enabled": "True"}, "model_outputs": {"enabled": "True"}}}
    server = Server(
        [
            "fraud",
            "--request-log",
            str(ws / "logs" / "requests.jsonl"),
            "--data-collector",
            json.dumps(collector),
            "--collect-dir",
            str(ws / "collected"),
        ],
        env=sqlite_cli.env,
        grpc=False,
    )
    try:
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": [0.5] * 32}]}
        for _ in range(5):
            assert httpx.post(f"{server.url}/v2/models/fraud/infer", json=body, timeout=10).status_code == 200
    finally:
        assert server.stop() == 0
    written = {path.name for path in ws.rglob("*")}
    assert {"modelport.db", "requests.jsonl", "model.onnx"} <= written, written
    assert list((ws / "collected").rglob("*.parquet")), "the collector wrote nothing"
    assert list((ws / "artifacts" / "sha256").rglob("*"))
    assert _loose(ws) == []
    blobs = [path for path in (ws / "artifacts" / "sha256").rglob("*") if path.is_file()]
    assert {stat.S_IMODE(path.stat().st_mode) for path in blobs} == {0o400}


def test_an_older_workspace_is_closed_on_open(sqlite_cli: Cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ok(sqlite_cli("model", "list"))
    os.chmod(ws, 0o755)  # as an older version left it
    os.chmod(ws / "modelport.db", 0o644)
    ok(sqlite_cli("model", "list"))
    assert stat.S_IMODE(ws.stat().st_mode) == 0o700
    assert stat.S_IMODE((ws / "modelport.db").stat().st_mode) == 0o600


def test_the_sdk_alone_keeps_the_workspace_private(tmp_path: Path) -> None:
    from modelport import Workspace

    model = build_mlp_onnx(tmp_path / "m" / "model.onnx")
    previous = os.umask(0o022)  # an SDK user's usual umask: nothing here sets a private one
    try:
        with Workspace(tmp_path / "ws") as ws:
            ws.models.register(model, "fraud")
            ws.models.path("fraud")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "ws").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "ws" / "modelport.db").stat().st_mode) == 0o600
    blobs = [path for path in (tmp_path / "ws" / "artifacts" / "sha256").rglob("*")]
    assert {stat.S_IMODE(path.stat().st_mode) for path in blobs} == {0o700, 0o400}


def test_a_downloaded_copy_is_independent_of_the_store(sqlite_cli: Cli, tmp_path: Path) -> None:
    model = build_mlp_onnx(tmp_path / "m" / "model.onnx")
    original = model.read_bytes()
    ok(sqlite_cli("model", "register", model, "--name", "fraud"))
    cached = Path(ok(sqlite_cli("model", "path", "fraud")).strip())
    downloaded = Path(ok(sqlite_cli("model", "download", "fraud", "--to", tmp_path / "out")).strip())
    assert downloaded.stat().st_nlink == 1 and not os.path.samefile(downloaded, cached)
    with open(downloaded, "r+b") as handle:  # the user edits what was downloaded
        handle.write(b"edited")
    assert Path(ok(sqlite_cli("model", "path", "fraud")).strip()).read_bytes() == original
    again = Path(ok(sqlite_cli("model", "download", "fraud", "--to", tmp_path / "again")).strip())
    assert again.read_bytes() == original
    ok(sqlite_cli("model", "show", "fraud"))


def test_download_to_a_file_is_one_line(sqlite_cli: Cli, tmp_path: Path) -> None:
    model = build_mlp_onnx(tmp_path / "m" / "model.onnx")
    ok(sqlite_cli("model", "register", model, "--name", "fraud"))
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    _one_line_error(
        sqlite_cli("model", "download", "fraud", "--to", not_a_folder), f"--to: {not_a_folder} is not a folder"
    )


def test_refused_writes_name_the_path(sqlite_cli: Cli, tmp_path: Path) -> None:
    """As root without the right to override file modes, so that modes are enforced."""
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to drop CAP_DAC_OVERRIDE")
    model = build_mlp_onnx(tmp_path / "m" / "model.onnx")
    ok(sqlite_cli("model", "register", model, "--name", "fraud"))
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)

    def limited(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*DROP_ROOT_RIGHTS, sys.executable, "-m", "modelport", *map(str, args)],
            env=sqlite_cli.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    line = _one_line_error(limited("model", "download", "fraud", "--to", locked), "permission denied:")
    assert line.endswith(f"permission denied: {locked}"), line  # the folder the user named, not a temporary
    staging = tmp_path / "ws" / "artifacts" / "tmp"
    os.chmod(staging, 0o500)
    other = build_mlp_onnx(tmp_path / "n" / "model.onnx", seed=3)
    line = _one_line_error(limited("model", "register", other, "--name", "other"), "permission denied:")
    assert line.endswith(f"permission denied: {staging}"), line
    os.chmod(staging, 0o700)
    assert _temps(tmp_path / "ws") == [] and list(locked.iterdir()) == []
    assert json.loads(ok(sqlite_cli("model", "list", "-o", "json")))[0]["name"] == "fraud"


def _mount_namespaces_work(tmp_path: Path) -> str | None:
    """Why a private tmpfs cannot be mounted here, or None when it can."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return "needs root and unshare for a private mount namespace"
    probe = tmp_path / "probe"
    probe.mkdir()
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {probe}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return None if done.returncode == 0 else f"cannot mount a tmpfs in a private namespace: {done.stderr.strip()}"


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    reason = _mount_namespaces_work(tmp_path)
    if reason:
        pytest.skip(reason)
    big = tmp_path / "big.bin"
    big.write_bytes(np.random.default_rng(0).bytes(60 * 1024 * 1024))
    small = build_mlp_onnx(tmp_path / "small" / "model.onnx")
    disk, report = tmp_path / "disk", tmp_path / "report"
    disk.mkdir()
    report.mkdir()
    modelport = f"{sys.executable} -m modelport"
    script = f"""
set -u
mount -t tmpfs -o size=40m tmpfs {disk} || exit 90
export MODELPORT_HOME={disk}/ws
{modelport} model register {big} --name big > {report}/big.out 2> {report}/big.err; echo $? > {report}/big.rc
find {disk} -name '*.tmp-*' > {report}/temps
df -k {disk} | tail -1 > {report}/df
{modelport} model register {small} --name small > {report}/small.out 2> {report}/small.err
echo $? > {report}/small.rc
{modelport} model list -o json > {report}/list.json
"""
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "MODELPORT_DB_URL"},
    )
    assert done.returncode == 0, done.stderr
    err = (report / "big.err").read_text()
    assert (report / "big.rc").read_text().strip() == "1", err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "no space left on device writing" in lines[0] and str(disk) in lines[0], err
    assert (report / "temps").read_text() == ""
    used_kb = int((report / "df").read_text().split()[2])
    assert used_kb < 5 * 1024, f"{used_kb} KiB still used after the failed registration"
    assert (report / "small.rc").read_text().strip() == "0", (report / "small.err").read_text()
    assert [m["name"] for m in json.loads((report / "list.json").read_text())] == ["small"]


def test_kill_9_during_a_large_registration_is_swept(sqlite_cli: Cli, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ok(sqlite_cli("model", "list"))
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:  # sparse-ish: cheap to make, a few hundred MB to copy
        handle.truncate(400 * 1024 * 1024)
        handle.write(b"not all zeros")
    staging = ws / "artifacts" / "tmp"
    process = sqlite_cli.popen("model", "register", big, "--name", "big")
    seen: list[Path] = []
    deadline = time.monotonic() + 120
    while not seen and process.poll() is None and time.monotonic() < deadline:
        seen = _temps(staging) if staging.is_dir() else []
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert seen, "the registration finished before its temporary was seen"
    assert seen[0].name.split(".tmp-")[1].split("-")[0] == str(process.pid)  # the writer's pid is in the name
    listed = json.loads(ok(sqlite_cli("model", "list", "-o", "json")))
    assert _temps(ws) == []
    if listed:  # killed after the commit: then it is complete
        assert Path(ok(sqlite_cli("model", "path", "big")).strip()).stat().st_size == big.stat().st_size


def _kept_while_held(cli: Cli, holder: str, *args: str) -> None:
    """What ``holder`` holds survives a sweep (any command opening the workspace) while it runs,
    and is swept once it is killed. ``holder`` is Python that prints the path it holds, locked."""
    process = subprocess.Popen([sys.executable, "-c", holder, *args], stdout=subprocess.PIPE, text=True)
    try:
        held = Path(process.stdout.readline().strip())
        assert held.exists()
        ok(cli("model", "list"))
        assert held.exists(), f"the sweep removed {held.name} while its writer still held it"
    finally:
        process.kill()
        process.wait()
    ok(cli("model", "list"))
    assert not held.exists()


def test_a_live_writers_temporary_survives_the_sweep(sqlite_cli: Cli, tmp_path: Path) -> None:
    ok(sqlite_cli("model", "list"))
    _kept_while_held(
        sqlite_cli,
        "import sys, time; from pathlib import Path; from modelport.core.files import private_dir, temp_file\n"
        "with temp_file(private_dir(Path(sys.argv[1])), 'upload') as (path, handle):\n"
        "    handle.write(b'x'); handle.flush(); print(path, flush=True); time.sleep(600)",
        str(tmp_path / "ws" / "tmp"),
    )


def test_sweep_rules_for_free_locks(tmp_path: Path) -> None:
    """A free lock with a live pid is the instant before locking, or a reused pid: kept while young."""
    young = tmp_path / f"a.tmp-{os.getpid()}-00"
    old = tmp_path / f"b.tmp-{os.getpid()}-01"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = tmp_path / f"c.tmp-{dead.stdout.strip()}-02"
    unrelated = tmp_path / "d.tmp-notapid"
    for path in (young, old, gone, unrelated):
        path.write_bytes(b"")
    past = time.time() - files.REUSED_PID_AFTER_S - 5
    os.utime(old, (past, past))
    assert sorted(files.sweep(tmp_path)) == sorted([old.name, gone.name])
    assert young.exists() and unrelated.exists()


def test_a_code_snapshot_is_private_and_leaves_no_staging(tmp_path: Path) -> None:
    from modelport import Workspace
    from modelport.control.catalog import Catalog
    from modelport.control.definitions import parse_deployment
    from modelport.schema.online import EndpointSpec

    code = tmp_path / "code"
    (code / "lib").mkdir(parents=True)
    (code / "score.py").write_text("def init(): pass\ndef run(data): return 1\n")
    (code / "lib" / "helper.py").write_text("X = 1\n")
    os.chmod(code / "lib", 0o755)
    os.chmod(code / "score.py", 0o644)
    with Workspace(tmp_path / "ws") as ws:
        ws.models.register(build_mlp_onnx(tmp_path / "m" / "model.onnx"), "mlp")
        catalog = Catalog(ws)
        catalog.create_endpoint(EndpointSpec(name="ep"))
        spec, _ = parse_deployment(
            {
                "endpoint_name": "ep",
                "name": "blue",
                "model": "mlp:1",
                "code_configuration": {"code": "code", "scoring_script": "score.py"},
            },
            tmp_path,
        )
        snapshot = Path(catalog.resolve(spec).spec.code_configuration.code)
    assert (snapshot / "lib" / "helper.py").read_text() == "X = 1\n"
    assert _loose(snapshot) == [] and list((tmp_path / "ws" / "tmp").iterdir()) == []


def test_a_dead_environment_build_is_swept_and_a_live_one_kept(sqlite_cli: Cli, tmp_path: Path) -> None:
    envs = tmp_path / "ws" / "envs"
    built, partial = envs / "00000000000000aa", envs / "00000000000000bb"
    for venv in (built, partial):
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").write_text("")
        (envs / f"{venv.name}.lock").write_text("")
    (built / "modelport-env.json").write_text("{}")
    # holds the build lock as a running build does
    _kept_while_held(
        sqlite_cli,
        "import sys, time; from filelock import FileLock\n"
        "lock = FileLock(sys.argv[1]); lock.acquire(); print(sys.argv[2], flush=True); time.sleep(600)",
        str(envs / f"{partial.name}.lock"),
        str(partial),
    )
    assert not partial.exists() and (built / "modelport-env.json").is_file()
