"""The model registry through the SDK, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from modelport.core.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from modelport.samples import build_mlp_onnx
from modelport.store.schema import ModelVersion


def _tree_bytes(root: Path) -> dict[str, bytes]:
    if root.is_file():
        return {root.name: root.read_bytes()}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _folder_model(tmp_path: Path) -> Path:
    folder = tmp_path / "folder_model"
    (folder / "sub" / "deeper").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(os.urandom(100_000))
    (folder / "sub" / "vocab.txt").write_text("a\nb\nc\n")
    (folder / "sub" / "deeper" / "empty.dat").write_bytes(b"")
    return folder


def _blobs(ws) -> list[Path]:  # noqa: ANN001
    root = Path(ws.settings.artifact_root)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_file_round_trip_versions_and_latest(workspace, onnx_model: Path, tmp_path: Path) -> None:
    first = workspace.models.register(onnx_model, "fraud", tags={"team": "risk"}, description="first")
    assert (first.version, first.flavor, first.root_name) == (1, "onnx", "model.onnx")
    assert first.files[0]["sha256"] == hashlib.sha256(onnx_model.read_bytes()).hexdigest()
    assert first.signature["inputs"][0]["name"] == "input"
    for i in (2, 3):
        other = build_mlp_onnx(tmp_path / f"v{i}" / "model.onnx", seed=i)
        assert workspace.models.register(other, "fraud").version == i
    assert workspace.models.get("fraud").version == 3
    assert workspace.models.get("fraud@latest").version == 3
    assert workspace.models.get("fraud:1").tags == {"team": "risk"}
    target = workspace.models.download("fraud:1", tmp_path / "out")
    assert target.read_bytes() == onnx_model.read_bytes()
    assert workspace.models.path("fraud:1").read_bytes() == onnx_model.read_bytes()
    [summary] = workspace.models.list()
    assert (summary.name, summary.latest_version, summary.version_count) == ("fraud", 3, 3)


def test_folder_round_trip(workspace, tmp_path: Path) -> None:
    folder = _folder_model(tmp_path)
    info = workspace.models.register(folder, "bundle")
    assert info.is_dir and info.flavor == "custom" and len(info.files) == 3
    out = workspace.models.download("bundle:1", tmp_path / "dl")
    assert _tree_bytes(out) == _tree_bytes(folder)
    assert _tree_bytes(workspace.models.path("bundle")) == _tree_bytes(folder)


def test_explicit_version_then_next_and_latest_is_most_recent(workspace, onnx_model: Path, tmp_path: Path) -> None:
    workspace.models.register(onnx_model, "m", version=10)
    other = tmp_path / "x.bin"
    other.write_bytes(b"x")
    assert workspace.models.register(other, "m", version="5").version == 5
    assert workspace.models.get("m").version == 5  # latest = most recently registered
    other.write_bytes(b"y")
    assert workspace.models.register(other, "m").version == 11
    with pytest.raises(ConflictError, match="version 5 already exists"):
        other.write_bytes(b"z")
        workspace.models.register(other, "m", version=5)


def test_aliases(workspace, onnx_model: Path, tmp_path: Path) -> None:
    workspace.models.register(onnx_model, "m")
    workspace.models.register(build_mlp_onnx(tmp_path / "b.onnx", seed=1), "m")
    workspace.models.set_alias("m", "prod", 1)
    assert workspace.models.get("m@prod").version == 1
    assert workspace.models.get("m:1").aliases == ["prod"]
    workspace.models.set_alias("m", "prod")  # moves to latest
    assert workspace.models.get("m@prod").version == 2
    workspace.models.delete_alias("m", "prod")
    with pytest.raises(NotFoundError, match="no alias 'prod'"):
        workspace.models.get("m@prod")
    with pytest.raises(ValidationError, match="reserved"):
        workspace.models.set_alias("m", "latest", 1)
    with pytest.raises(NotFoundError, match="no version 9"):
        workspace.models.set_alias("m", "prod", 9)


def test_archive_hides_but_resolves(workspace, onnx_model: Path, tmp_path: Path) -> None:
    workspace.models.register(onnx_model, "m")
    other = tmp_path / "b.bin"
    other.write_bytes(b"v2")
    workspace.models.register(other, "m")
    workspace.models.archive("m:2")
    assert [i.version for i in workspace.models.versions("m")] == [1]
    assert workspace.models.get("m:2").archived
    assert workspace.models.get("m").version == 1  # latest skips archived versions
    workspace.models.archive("m")
    assert workspace.models.list() == []
    assert workspace.models.get("m:1").archived
    assert [m.name for m in workspace.models.list(include_archived=True)] == ["m"]
    workspace.models.restore("m")
    workspace.models.restore("m:2")
    assert [i.version for i in workspace.models.versions("m")] == [1, 2]


def test_update_changes_only_tags_and_description(workspace, onnx_model: Path) -> None:
    workspace.models.register(onnx_model, "m", tags={"a": "1", "b": "2"})
    info = workspace.models.update("m:1", tags={"a": "9"}, remove_tags=["b"], description="new")
    assert (info.tags, info.description) == ({"a": "9"}, "new")
    with pytest.raises(ValidationError, match="'zzz' is not set"):
        workspace.models.update("m:1", remove_tags=["zzz"])


def test_duplicate_content_is_reported(workspace, onnx_model: Path) -> None:
    workspace.models.register(onnx_model, "m")
    with pytest.raises(ConflictError, match="already registered as version 1"):
        workspace.models.register(onnx_model, "m")
    assert workspace.models.register(onnx_model, "m", allow_duplicate=True).version == 2
    assert workspace.models.register(onnx_model, "other").version == 1  # per name


@pytest.mark.parametrize("single_file", [True, False])
def test_corrupted_blob_is_never_served(workspace, onnx_model: Path, tmp_path: Path, single_file: bool) -> None:
    source = onnx_model if single_file else _folder_model(tmp_path)
    info = workspace.models.register(source, "m")
    workspace.models.path("m")  # materialise a good copy first: it must not hide the damage
    victim = max(info.files, key=lambda f: f["size"])
    blob = Path(workspace.settings.artifact_root) / "sha256" / victim["sha256"][:2] / victim["sha256"]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(blob, 0o644)
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"file '{victim['path']}'.*corrupted"):
        workspace.models.path("m")
    with pytest.raises(IntegrityError, match=victim["path"]):
        workspace.models.download("m", tmp_path / "dl")
    assert not (tmp_path / "dl" / info.root_name).exists()
    cached = workspace.settings.cache_dir / "models" / "m" / "1"
    assert not cached.exists()


def test_damaged_cache_copy_is_rebuilt_from_store(workspace, tmp_path: Path) -> None:
    """A cache that lost a file (someone deleted it) is re-materialised from the intact store."""
    folder = _folder_model(tmp_path)
    workspace.models.register(folder, "m")
    path = workspace.models.path("m")
    (path / "sub" / "vocab.txt").unlink()
    assert _tree_bytes(workspace.models.path("m")) == _tree_bytes(folder)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "a/b"}, "name: 'a/b' is not valid"),
        ({"name": ".."}, "name: '..' is not valid"),
        ({"name": "a..b"}, "is not valid"),
        ({"name": "has space"}, "is not valid"),
        ({"name": "x" * 300}, "300 characters"),
        ({"name": ""}, "must not be empty"),
        ({"version": "abc"}, "version: 'abc' is not a positive integer"),
        ({"version": 0}, "version: 0 is not a positive integer"),
        ({"flavor": "keras"}, "flavor: 'keras'"),
        ({"path": "missing.onnx"}, "does not exist"),
        ({"tags": {"": "x"}}, "tags: key"),
    ],
)
def test_bad_input_writes_nothing(workspace, onnx_model: Path, tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"path": onnx_model, "name": "good", **kwargs}
    if args["path"] == "missing.onnx":
        args["path"] = tmp_path / "missing.onnx"
    path, name = args.pop("path"), args.pop("name")
    with pytest.raises(ValidationError, match=message):
        workspace.models.register(path, name, **args)
    assert workspace.models.list(include_archived=True) == []
    assert _blobs(workspace) == []


def test_failed_insert_leaves_no_orphan_blobs(workspace, onnx_model: Path, tmp_path: Path) -> None:
    workspace.models.register(onnx_model, "m", version=1)
    other = tmp_path / "new.bin"
    other.write_bytes(b"brand new bytes")
    before = _blobs(workspace)
    with pytest.raises(ConflictError):
        workspace.models.register(other, "m", version=1)
    assert _blobs(workspace) == before


@pytest.mark.parametrize("ref", ["nope", "nope:1", "nope@prod", "m:7", "m@prod", "m:x", "m@1bad", "bad/name"])
def test_references_to_nothing(workspace, onnx_model: Path, ref: str) -> None:
    workspace.models.register(onnx_model, "m")
    with pytest.raises((NotFoundError, ValidationError)):
        workspace.models.get(ref)


def test_delete_version_collects_unshared_blobs(workspace, onnx_model: Path, tmp_path: Path) -> None:
    workspace.models.register(onnx_model, "m")
    workspace.models.register(onnx_model, "copy")  # shares the blob
    other = tmp_path / "v2.bin"
    other.write_bytes(b"only in v2")
    workspace.models.register(other, "m")
    with pytest.raises(ValidationError, match="names no version"):
        workspace.models.delete("m")
    workspace.models.delete("m:2")
    assert len(_blobs(workspace)) == 1
    workspace.models.delete("m:1")
    assert len(_blobs(workspace)) == 1  # still used by "copy"
    assert [m.name for m in workspace.models.list()] == ["copy"]
    with workspace.db.session() as session:
        assert session.query(ModelVersion).count() == 1


def test_explicit_custom_flavor_accepts_any_bytes(workspace, tmp_path: Path) -> None:
    odd = tmp_path / "weights.onnx"
    odd.write_bytes(b"not a protobuf at all \xff\x00")
    assert workspace.models.register(odd, "m", flavor="custom").flavor == "custom"
