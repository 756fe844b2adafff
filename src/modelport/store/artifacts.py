"""Content-addressed artifact storage: every file is stored once, under its sha256.

The root is a local folder or any fsspec URL (``s3://bucket/prefix``, ``memory://x``...).
A blob is written to a temporary key and moved into place, so a reader never sees half a
file, and its bytes are re-hashed whenever they are materialised for use: a corrupted blob is
reported naming the file it stands for and is never handed out.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from modelport.core.errors import IntegrityError, ModelportError, NotFoundError

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_hashing(src: BinaryIO, dst: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := src.read(CHUNK):
        digest.update(chunk)
        dst.write(chunk)
    return digest.hexdigest()


class ArtifactStore:
    """Blobs keyed by sha256 under ``<root>/sha256/<first two hex>/<hex>``."""

    def __init__(self, root: str) -> None:
        try:
            self.fs, base = fsspec.core.url_to_fs(root)
        except (ImportError, ValueError) as exc:
            raise ModelportError(f"artifact root {root!r}: {exc}") from None
        self.root = root
        self._base = base.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)

    def _key(self, sha: str) -> str:
        return f"{self._base}/sha256/{sha[:2]}/{sha}"

    def local_path(self, sha: str) -> Path | None:
        """The blob's own file when the store is a local folder (used for zero-copy links)."""
        return Path(self._key(sha)) if self.is_local else None

    def has(self, sha: str) -> bool:
        return bool(self.fs.exists(self._key(sha)))

    def put(self, source: Path, sha: str) -> bool:
        """Store ``source`` (whose sha256 the caller computed) unless present; True if written."""
        key = self._key(sha)
        if self.fs.exists(key):
            return False
        self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{key}.tmp-{uuid.uuid4().hex}"
        self.fs.put_file(str(source), tmp)
        if self.is_local:
            os.chmod(tmp, 0o444)  # blobs may be hard-linked into model folders: keep them read-only
            os.replace(tmp, key)
        else:
            self.fs.mv(tmp, key)
        return True

    def delete(self, sha: str) -> None:
        key = self._key(sha)
        if self.fs.exists(key):
            self.fs.rm(key)

    def verify(self, sha: str, label: str) -> None:
        """Re-hash the blob; raise IntegrityError naming ``label`` if it changed or vanished."""
        digest = hashlib.sha256()
        with self._open(sha, label) as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != sha:
            raise IntegrityError(f"{label}: stored artifact is corrupted (sha256 mismatch); refusing to use it")

    def materialize(self, sha: str, dest: Path, label: str) -> None:
        """Place the blob's bytes at ``dest`` after checking them.

        Local stores hard-link (no copy, and a later corruption of the blob shows in the
        linked file too, so re-verifying the file re-verifies the blob); other stores copy.
        """
        dest.parent.mkdir(parents=True, exist_ok=True)
        blob = self.local_path(sha)
        if blob is not None:
            self.verify(sha, label)
            try:
                os.link(blob, dest)
                return
            except OSError:
                pass  # another filesystem: fall back to a copy
        tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex}")
        try:
            with self._open(sha, label) as src, open(tmp, "wb") as dst:
                actual = _copy_hashing(src, dst)
            if actual != sha:
                raise IntegrityError(f"{label}: stored artifact is corrupted (sha256 mismatch); refusing to use it")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def _open(self, sha: str, label: str) -> BinaryIO:
        try:
            return self.fs.open(self._key(sha), "rb")
        except FileNotFoundError:
            raise NotFoundError(f"{label}: stored artifact is missing from {self.root}") from None

    def read_bytes(self, sha: str, label: str) -> bytes:
        with self._open(sha, label) as handle:
            data = handle.read()
        if hashlib.sha256(data).hexdigest() != sha:
            raise IntegrityError(f"{label}: stored artifact is corrupted (sha256 mismatch); refusing to use it")
        return data


def remove_tree(path: Path) -> None:
    """Delete a folder even when it holds read-only hard links to blobs."""
    shutil.rmtree(path, ignore_errors=True)
