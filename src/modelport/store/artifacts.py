"""Content-addressed artifact storage: every file is stored once, under its sha256.

The root is a local folder or any fsspec URL (``s3://bucket/prefix``, ``memory://x``...).
A blob is written to a temporary key under ``<root>/tmp/`` and moved into place, so a reader
never sees half a file, and its bytes are re-hashed whenever they are materialised for use: a
corrupted blob is reported naming the file it stands for and is never handed out.

On a local root, blobs are 0400 in 0700 folders, written through ``core.files.temp_file``
(hashed while copied, flushed to disk before the rename), and ``sweep`` removes the
temporaries of writers that died.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from modelport.core.errors import IntegrityError, ModelportError, NotFoundError, ValidationError
from modelport.core.files import BLOB_MODE, FILE_MODE, disk_errors, private_dir, sweep, temp_file, temp_name

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

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
        self.root = root
        self._fs: AbstractFileSystem | None = None
        if ":" not in root:  # a folder: fsspec is imported when a blob is first touched, not by every open
            self._base = str(Path(root).expanduser().absolute())
            self.is_local = True
            return
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        try:
            self._fs, base = fsspec.core.url_to_fs(root)
        except (ImportError, ValueError) as exc:
            raise ModelportError(f"artifact root {root!r}: {exc}") from None
        self._base = base.rstrip("/")
        self.is_local = isinstance(self._fs, LocalFileSystem)

    @property
    def fs(self) -> AbstractFileSystem:
        """The root's filesystem (a folder's local one is made on first use)."""
        if self._fs is None:
            from fsspec.implementations.local import LocalFileSystem

            self._fs = LocalFileSystem()
        return self._fs

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
        if self.is_local:
            self._put_local(Path(source), sha, Path(key))
            return True
        self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{self._base}/tmp/{temp_name(sha)}"
        try:
            self.fs.put_file(str(source), tmp)
            self.fs.mv(tmp, key)
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: the original error is the one to report
                self.fs.rm(tmp)
            raise
        return True

    def _put_local(self, source: Path, sha: str, key: Path) -> None:
        """Copy into a locked temporary, check the bytes are still those the caller hashed (the
        source may have changed since), make them durable, then rename into place. Read-only
        (0400): blobs may be hard-linked into the workspace's cache."""
        with disk_errors(key):
            private_dir(key.parent)
            with temp_file(private_dir(self.tmp_dir), sha, BLOB_MODE) as (tmp, handle):
                with open(source, "rb") as src:
                    actual = _copy_hashing(src, handle)
                if actual != sha:
                    raise ValidationError(f"{source}: changed while it was being stored; register it again")
                handle.flush()
                os.fsync(handle.fileno())
                os.replace(tmp, key)

    @property
    def tmp_dir(self) -> Path:
        """Where a local root stages blobs: on the blobs' filesystem, so a finished one is renamed in."""
        return Path(f"{self._base}/tmp")

    def sweep(self) -> None:
        """Remove temporaries of writers that died (local roots; an object store has no such
        leftovers worth a listing on every open)."""
        if self.is_local:
            sweep(self.tmp_dir)

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

    def materialize(self, sha: str, dest: Path, label: str, *, link: bool = True) -> None:
        """Place the blob's bytes at ``dest`` after checking them.

        ``link``: for the workspace's own cache. Local stores hard-link (no copy, and a later
        corruption of the blob shows in the linked file too, so re-verifying the file re-verifies
        the blob); other stores copy, read-only like a blob. Without it, ``dest`` is an
        independent, writable copy (a download): editing it cannot touch the store.
        """
        private_dir(dest.parent)
        blob = self.local_path(sha)
        if link and blob is not None:
            self.verify(sha, label)
            try:
                os.link(blob, dest)
                return
            except OSError:
                pass  # another filesystem: fall back to a copy
        with (
            self._open(sha, label) as src,
            temp_file(dest.parent, f".{dest.name}", BLOB_MODE if link else FILE_MODE) as (tmp, dst),
        ):
            actual = _copy_hashing(src, dst)
            if actual != sha:
                raise IntegrityError(f"{label}: stored artifact is corrupted (sha256 mismatch); refusing to use it")
            os.replace(tmp, dest)

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
