"""A content-addressed file store for S3 object bodies.

A body is written once, under its SHA-256, and every snapshot that needs it refers to it by
that name; a snapshot therefore stays small and fast however much data the buckets hold.
Files are written atomically, so a file under its final name is always complete; the renames
are made durable in one go, by sync(), before a snapshot refers to them.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from pathlib import Path

from environments.emulator.state.errors import CorruptState
from environments.plumbing.files import TEMP_SUFFIX, atomic_write, fsync_directory


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._known = self._scan()
        self._unsynced_dirs: set[Path] = set()
        # Held by garbage collection and by the journal while it adds a blob it refers to,
        # so a blob is never collected between being written and being referenced.
        self.lock = threading.Lock()

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
        atomic_write(target, data, sync_directory=False)
        self._unsynced_dirs.add(target.parent)
        self._known.add(digest)

    def write_durably(self, digest: str, data: bytes) -> None:
        """Write one blob and make it durable now, for a journal record about to refer to it."""
        if digest in self._known:
            return
        target = self.path(digest)
        new_shard = not target.parent.exists()
        atomic_write(target, data)
        if new_shard:
            fsync_directory(self.root)
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
                if entry.name.endswith(TEMP_SUFFIX):
                    # Left by a crash mid-write; never referenced by any snapshot.
                    entry.unlink(missing_ok=True)
                else:
                    found.add(entry.name)
        return found
