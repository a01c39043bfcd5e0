"""The state directory: snapshot generations, fallback on damage, and blob garbage collection.

    <state-dir>/lock                 held while a server uses the directory
    <state-dir>/snapshots/gen-N.snap the newest few snapshots; the highest N is the current one
    <state-dir>/blobs/ab/abcd...     S3 object bodies and large journaled request bodies, by SHA-256
    <state-dir>/journal/N.wal        the write-ahead journal since the snapshots (see journal)
    <state-dir>/quarantine/          snapshots that failed to load, kept for inspection

A snapshot that fails to load is moved to quarantine and the next older one is tried, so one
damaged file costs the changes since the snapshot before it, not everything. Snapshot files are
pickles: the directory is created private to its owner, and nothing else should write there.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from environments.emulator.state import backends, snapshot_file
from environments.emulator.state.blobs import BlobStore
from environments.emulator.state.errors import CorruptState, IncompatibleState
from environments.emulator.state.pickling import load_state
from environments.plumbing.files import TEMP_SUFFIX
from environments.plumbing.locks import FileLock, LockTimeout

log = logging.getLogger(__name__)

KEEP_GENERATIONS = 3
_NAME = re.compile(r"^gen-(\d+)\.snap$")


class StateDirBusy(Exception):
    """Another embedded AWS already uses the state directory."""


@dataclass
class Restored:
    generation: int | None = None
    services: list[str] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    journal_seq: int = 0
    snapshot_bytes: int = 0


class StateStore:
    def __init__(self, root: Path, lock_wait: float = 0.0) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_file = self._lock(root / "lock", lock_wait)
        self.snapshots = root / "snapshots"
        self.quarantine = root / "quarantine"
        self.snapshots.mkdir(exist_ok=True)
        self.quarantine.mkdir(exist_ok=True)
        for leftover in self.snapshots.glob(f"*{TEMP_SUFFIX}"):
            leftover.unlink()
        self.blobs = BlobStore(root / "blobs")
        # The blobs each kept snapshot refers to; None where a header could not be read.
        self._references: dict[Path, set[str] | None] = {}
        # The last journal record each kept snapshot includes.
        self._journal_seqs: dict[Path, int] = {}
        for path in [*self._generations().values(), *self.quarantine.iterdir()]:
            self._references[path] = self._blob_references(path)
        for path in self._generations().values():
            self._journal_seqs[path] = self._journal_seq(path)
        self._next_generation = max(self._generations(), default=0) + 1

    def load(self) -> Restored:
        """Install the newest snapshot that loads, trying older ones after damage."""
        restored = Restored()
        for generation, path in sorted(self._generations().items(), reverse=True):
            try:
                states = self._read(path)
            except IncompatibleState:
                raise
            except Exception as error:
                # Whatever broke (damage, a missing blob, a bug), an older snapshot may load.
                log.warning("snapshot %s cannot be loaded (%s); trying an older one", path, error)
                backends.forget_all()
                self._quarantine(path)
                restored.skipped.append(generation)
                continue
            backends.install(states)
            restored.generation = generation
            restored.journal_seq = self._journal_seqs.get(path, 0)
            restored.snapshot_bytes = path.stat().st_size
            restored.services = [state.service_name for state in states]
            return restored
        if restored.skipped:
            log.warning("no snapshot in %s could be loaded; starting empty", self.snapshots)
        return restored

    def save(
        self, payload: bytes, blobs: set[str], services: list[str], journal_seq: int = 0
    ) -> Path:
        path = self.snapshots / f"gen-{self._next_generation:010d}.snap"
        snapshot_file.write(path, payload, blobs, services, journal_seq)
        self._next_generation += 1
        self._references[path] = set(blobs)
        self._journal_seqs[path] = journal_seq
        generations = sorted(self._generations().items(), reverse=True)
        for _, old in generations[KEEP_GENERATIONS:]:
            old.unlink(missing_ok=True)
            self._references.pop(old, None)
            self._journal_seqs.pop(old, None)
        return path

    def oldest_journal_seq(self) -> int:
        """The journal records up to here are in every kept snapshot: safe to delete."""
        return min(self._journal_seqs.values(), default=0)

    def collect_garbage(self, pinned: Callable[[], set[str]] | None = None) -> int:
        """Delete blobs that no kept snapshot refers to, nor anything `pinned` names."""
        with self.blobs.lock:
            keep: set[str] = set(pinned()) if pinned else set()
            for path, references in self._references.items():
                if references is not None:
                    keep |= references
                elif path.parent == self.snapshots:
                    # A kept snapshot whose blobs are unknown: deleting anything could hurt it.
                    log.info("not collecting blobs while %s has an unreadable header", path)
                    return 0
            return self.blobs.collect_garbage(keep)

    def _read(self, path: Path) -> list[backends.ServiceState]:
        header, payload = snapshot_file.read(path)
        states = load_state(payload, self.blobs)
        if not isinstance(states, list) or not all(
            isinstance(state, backends.ServiceState) for state in states
        ):
            raise CorruptState(f"{path} does not hold embedded AWS state")
        log.info(
            "restored %s (%d services, %d S3 bodies)",
            path.name,
            len(states),
            len(header.get("blobs", [])),
        )
        return states

    def _generations(self) -> dict[int, Path]:
        found = {}
        for path in self.snapshots.iterdir():
            match = _NAME.match(path.name)
            if match:
                found[int(match.group(1))] = path
        return found

    def _quarantine(self, path: Path) -> None:
        target = self.quarantine / f"{path.name}.{int(time.time())}"
        os.replace(path, target)
        self._references[target] = self._references.pop(path, None)
        self._journal_seqs.pop(path, None)

    @staticmethod
    def _blob_references(path: Path) -> set[str] | None:
        try:
            header: dict[str, Any] = snapshot_file.read_header(path)
        except (OSError, CorruptState):
            return None
        blobs = header.get("blobs")
        return set(blobs) if isinstance(blobs, list) else None

    @staticmethod
    def _journal_seq(path: Path) -> int:
        try:
            seq = snapshot_file.read_header(path).get("journal_seq", 0)
        except (OSError, CorruptState):
            return 0
        return seq if isinstance(seq, int) else 0

    @staticmethod
    def _lock(path: Path, wait: float) -> FileLock:
        """Take the state dir for the server's lifetime, waiting up to `wait` seconds: a
        predecessor that was told to stop (its parent was killed) may still be writing its
        final snapshot."""
        lock = FileLock(path, timeout=wait)
        try:
            lock.acquire()
        except LockTimeout as error:
            raise StateDirBusy(f"another embedded AWS is using {path.parent}") from error
        return lock
