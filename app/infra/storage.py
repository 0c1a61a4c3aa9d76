"""Content-addressed storage of document bytes, behind one small interface (a directory on disk by default).

Identical bytes are stored once. Writing goes to a temporary file while hashing, then is renamed into place,
so a crash or a full disk never leaves a half-written blob under its hash.
"""

import errno
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024


class StorageFull(Exception):
    """No space left to store the bytes."""


class TooLarge(Exception):
    """The content is larger than allowed."""


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int


class FileBlobStore:
    """Blobs in `root/ab/cd/<sha256>`; blocking I/O, so callers run it in a worker thread."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, source: BinaryIO, *, max_size: int) -> StoredBlob:
        """Copy `source` in, hashing as it goes; refuses more than max_size bytes."""
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    if size > max_size:
                        raise TooLarge
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            final = self._path(digest.hexdigest())
            if not final.exists():
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp_name, final)
            return StoredBlob(digest.hexdigest(), size)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull from exc
            raise
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def open(self, sha256: str) -> BinaryIO:
        return self._path(sha256).open("rb")

    def digest(self, sha256: str) -> str | None:
        """The SHA-256 of what is stored under this name now (None when missing): detects tampering."""
        path = self._path(sha256)
        if not path.exists():
            return None
        h = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        return h.hexdigest()
