"""Safe extraction of plugins.zip.

Refused, with a message naming the entry: absolute paths and `..` (zip-slip), symbolic links
and other non-regular entries, a path used both as a file and as a folder, too many entries,
too many bytes once expanded, and entries whose compression ratio only a zip bomb would have.
Sizes are enforced while streaming, not trusted from the archive's own headers. Extraction
goes to a temporary folder that replaces the target only when everything succeeded.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_CHUNK = 1 << 16


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int = 10_000
    max_total_bytes: int = 512 * 1024 * 1024
    max_ratio: float = 200.0  # uncompressed / compressed, per entry
    ratio_floor_bytes: int = 1024 * 1024  # small entries may compress well without suspicion


class UnsafeArchive(ValueError):
    pass


def _entry_path(name: str) -> PurePosixPath:
    if not name or "\x00" in name:
        raise UnsafeArchive(f"entry {name!r} has no usable name")
    if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"entry {name!r} has an absolute path")
    parts = name.replace("\\", "/").split("/")
    if any(part == ".." for part in parts):
        raise UnsafeArchive(f"entry {name!r} points outside the plugins folder")
    clean = [p for p in parts if p not in ("", ".")]
    if not clean:
        raise UnsafeArchive(f"entry {name!r} has no usable name")
    return PurePosixPath(*clean)


def _check_kind(info: zipfile.ZipInfo) -> None:
    # Unix archivers keep the file type in the high bits; many tools leave them empty.
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise UnsafeArchive(f"entry {info.filename!r} is a symbolic link")
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeArchive(f"entry {info.filename!r} is not a regular file or folder")


def _check_layout(entries: list[zipfile.ZipInfo]) -> None:
    """Refuse an archive in which one path is both a file and a folder (`a` beside `a/b.py`):
    no extraction order can honour both, and the filesystem would answer with an error."""
    files: dict[PurePosixPath, str] = {}
    folders: set[PurePosixPath] = set()
    for info in entries:
        rel = _entry_path(info.filename)
        folders.update(rel.parents)
        if info.is_dir():
            folders.add(rel)
        else:
            files[rel] = info.filename
    for rel in sorted(files.keys() & folders):
        raise UnsafeArchive(
            f"entry {files[rel]!r} is a file, but other entries use {str(rel)!r} as a folder"
        )


def extract_zip(archive: Path, target: Path, limits: ArchiveLimits | None = None) -> list[str]:
    """Extract `archive` into `target` (replacing it); returns the files written."""
    limits = limits or ArchiveLimits()
    try:
        bundle = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise UnsafeArchive(f"not a valid zip archive ({err})") from None
    with bundle:
        entries = bundle.infolist()
        if len(entries) > limits.max_entries:
            raise UnsafeArchive(f"{len(entries)} entries; the limit is {limits.max_entries}")
        _check_layout(entries)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".airdock-plugins-", dir=target.parent))
        try:
            written = _extract_all(bundle, entries, staging, limits)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return written


def _extract_all(
    bundle: zipfile.ZipFile, entries: list[zipfile.ZipInfo], staging: Path, limits: ArchiveLimits
) -> list[str]:
    written: list[str] = []
    total = 0
    for info in entries:
        _check_kind(info)
        rel = _entry_path(info.filename)
        destination = staging.joinpath(*rel.parts)
        if info.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        try:
            with bundle.open(info) as source, open(destination, "wb") as sink:
                while chunk := source.read(_CHUNK):
                    size += len(chunk)
                    total += len(chunk)
                    if total > limits.max_total_bytes:
                        raise UnsafeArchive(
                            f"expands to more than {limits.max_total_bytes} bytes "
                            f"(at entry {info.filename!r})"
                        )
                    if size > limits.ratio_floor_bytes and size > limits.max_ratio * max(
                        info.compress_size, 1
                    ):
                        raise UnsafeArchive(
                            f"entry {info.filename!r} expands more than "
                            f"{limits.max_ratio:.0f} times: a zip bomb?"
                        )
                    sink.write(chunk)
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError) as err:
            raise UnsafeArchive(f"entry {info.filename!r} cannot be read ({err})") from None
        written.append(str(rel))
    return written
