"""Atomic, durable file writes.

The data goes to a temporary file next to the target (same directory, so the rename cannot
cross filesystems), is flushed to disk, and is renamed over the target; then the directory is
flushed, so the rename itself survives a power cut. Readers see the old file or the new one,
never half of either.

Temporary files carry TEMP_PREFIX and TEMP_SUFFIX, so code that scans a directory can skip the
ones a write in progress holds, and sweep the ones a crash left behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".airdock-"
TEMP_SUFFIX = ".tmp"
PRIVATE = 0o600


def is_temporary(name: str) -> bool:
    """Whether a file name is one of this module's temporary files."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def fsync_directory(path: Path) -> None:
    """Make renames inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(
    path: Path, *, mode: int = PRIVATE, sync_directory: bool = True
) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces `path` when the block ends without an exception.

    The file has `mode` from the moment it exists, so a secret is never readable by others, not
    even briefly. With `sync_directory=False` the caller flushes the directory itself
    (fsync_directory), for instance once after many writes into it.
    """
    with _aside(path, mode) as (handle, temporary):
        yield handle
        _flush(handle)
        os.replace(temporary, path)
    if sync_directory:
        fsync_directory(path.parent)


def atomic_write(
    path: Path, data: bytes | str, *, mode: int = PRIVATE, sync_directory: bool = True
) -> None:
    """Replace `path` with `data` (text is written as UTF-8); see atomic_output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, mode=mode, sync_directory=sync_directory) as handle:
        handle.write(data.encode() if isinstance(data, str) else data)


def create_once(path: Path, data: bytes, *, mode: int = PRIVATE) -> bool:
    """Create `path` holding `data` unless it exists already; True when this call created it.

    The file appears complete or not at all, and when several processes race to create it, one
    wins and the others keep its content: it is written aside and linked into place, and a
    link, unlike a rename, fails when the name is taken.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with _aside(path, mode) as (handle, temporary):
        handle.write(data)
        _flush(handle)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        finally:
            temporary.unlink()
    fsync_directory(path.parent)
    return True


@contextlib.contextmanager
def _aside(path: Path, mode: int) -> Iterator[tuple[BinaryIO, Path]]:
    """A new temporary file beside `path` (mkstemp makes it 0600), removed if the block fails."""
    fd, name = tempfile.mkstemp(
        prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent
    )
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode != PRIVATE:
                os.fchmod(handle.fileno(), mode)
            yield handle, temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _flush(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
