"""A content-addressed file store for S3 object bodies.

A body is written once, under its SHA-256, and every snapshot that needs it refers to it by
that name; a snapshot therefore stays small and fast however much data the buckets hold.
Files are written to a temporary name, flushed to disk and renamed, so a file under its final
name is always complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from environments.emulator.state.errors import CorruptState


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fsync_directory(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._known = self._scan()
        self._unsynced_dirs: set[Path] = set()

    def __contains__(self, digest: str) -> bool:
        return digest in self._known

    def __len__(self) -> int:
        return len(self._known)

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def write(self, digest: str, data: bytes) -> None:
        if digest in self._known:
            return
        target = self.path(digest)
        target.parent.mkdir(exist_ok=True)
        temporary = target.with_name(f"{digest}.tmp")
        with open(temporary, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
        self._unsynced_dirs.add(target.parent)
        self._known.add(digest)

    def sync(self) -> None:
        """Make the renames of everything written so far durable, before a snapshot needs them."""
        for directory in self._unsynced_dirs:
            fsync_directory(directory)
        if self._unsynced_dirs:
            fsync_directory(self.root)
        self._unsynced_dirs.clear()

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError as error:
            raise CorruptState(f"S3 object body {digest} is missing") from error

    def collect_garbage(self, keep: set[str]) -> int:
        """Delete every blob no kept snapshot refers to; returns how many went."""
        removed = 0
        for digest in list(self._known - keep):
            with contextlib.suppress(FileNotFoundError):
                self.path(digest).unlink()
            self._known.discard(digest)
            removed += 1
        return removed

    def _scan(self) -> set[str]:
        found: set[str] = set()
        for shard in self.root.iterdir():
            if not shard.is_dir():
                continue
            for entry in shard.iterdir():
                if entry.name.endswith(".tmp"):
                    # Left by a crash mid-write; never referenced by any snapshot.
                    entry.unlink(missing_ok=True)
                else:
                    found.add(entry.name)
        return found
