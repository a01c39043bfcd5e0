"""Noticing that a file changed, cheaply: compare its stat signature with the one last seen.

The signature is (inode, mtime in nanoseconds, size). An atomic replace gives the file a new
inode, so even a rewrite within the clock's resolution and of the same size is noticed.
"""

from __future__ import annotations

from pathlib import Path

Signature = tuple[int, int, int]


def signature(path: Path) -> Signature | None:
    """The file's signature now; None when it is missing or cannot be examined."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


class FileWatch:
    """The signatures of some files as they were when last read, to tell whether any changed.

    Record a file with note() just before reading it: a change that lands after the read still
    differs from what was noted.
    """

    def __init__(self) -> None:
        self._seen: dict[Path, Signature | None] = {}

    def note(self, path: Path) -> None:
        self._seen[path] = signature(path)

    def changed(self) -> bool:
        return any(signature(path) != seen for path, seen in self._seen.items())
