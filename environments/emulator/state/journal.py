"""The write-ahead journal: every mutating request, durable before its response leaves.

A mutating request runs under `mutation_lock`, so requests change moto's state one at a time
and the journal's order is the order their changes happen in. Its record (the request itself
plus the seed and instant it runs with, see randomness and clock) is appended to an in-memory
batch under that lock before moto runs it; a flusher thread writes and fdatasyncs whatever has
accumulated (group commit), while moto does its work, and the request waits for
`wait_durable` before its response leaves. The cost per write is one small append and a share
of one fdatasync, whatever the size of the state.

Request bodies above INLINE_BODY_LIMIT (S3 uploads) go to the blob store first, written and
synced on their own, and the record refers to them by digest, so large objects are not copied
through the journal.

A read must never see a change that could still be lost: `wait_for_reads` holds a read's
response until every change it could have seen is durable.

Snapshots compact the journal: with requests held back by the gate, `rotate` starts a new
segment, the snapshot records the last sequence number it holds, and once it is saved the
segments it covers are deleted (`forget_through`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from environments.emulator.state import journal_file
from environments.emulator.state.blobs import BlobStore, digest_of
from environments.plumbing.files import fsync_directory

log = logging.getLogger(__name__)

INLINE_BODY_LIMIT = 64 * 1024
# Compact once the journal holds this much, or as much as the last snapshot if that is more:
# the snapshot's cost, which grows with the state, is then spread over a matching amount of
# writes, and replay after a crash stays shorter than a load of the state.
COMPACT_MIN_BYTES = 16 * 1024 * 1024
COMPACT_MIN_RECORDS = 2000
BYTES_PER_RECORD_OF_SNAPSHOT = 1024


class JournalBroken(Exception):
    """The journal could not be written; nothing more can be acknowledged as durable."""


class Journal:
    def __init__(
        self,
        directory: Path,
        blobs: BlobStore,
        next_seq: int,
        old_blobs: set[str] | None = None,
        compact_min_records: int = COMPACT_MIN_RECORDS,
    ) -> None:
        """Continue after the segments already in `directory`, which hold records below
        `next_seq` referring to `old_blobs`; any segment from `next_seq` on is stale."""
        self.directory = directory
        directory.mkdir(mode=0o700, exist_ok=True)
        self.mutation_lock = threading.Lock()
        self._holder = threading.local()
        self._blobs = blobs
        self._cond = threading.Condition()
        self._appended = self._durable = next_seq - 1
        self._pending: list[bytes] = []
        self._broken: OSError | None = None
        self._closing = False
        # (first seq, path, digests of the blobs its records refer to), oldest first.
        self._segments: list[tuple[int, Path, set[str]]] = []
        for first, path in journal_file.segments(directory):
            if first >= next_seq:
                path.unlink()
            else:
                self._segments.append((first, path, set()))
        if self._segments and old_blobs:
            # Kept until the newest old segment goes, which is the last of them to go.
            self._segments[-1][2].update(old_blobs)
        self._in_flight_blobs: Counter[str] = Counter()
        self._fd = -1
        self._bytes = self._records = 0
        self._compact_min_records = compact_min_records
        self._open_segment(next_seq)
        self._flusher = threading.Thread(
            target=self._flush_forever, name="aws-journal", daemon=True
        )
        self._flusher.start()

    # -- the request path --

    def stash_body(self, body: bytes) -> str | None:
        """Write a large body to the blob store, durably; None when it goes in the record."""
        if len(body) <= INLINE_BODY_LIMIT:
            return None
        digest = digest_of(body)
        with self._blobs.lock:
            with self._cond:
                self._in_flight_blobs[digest] += 1
            self._blobs.write_durably(digest, body)
        return digest

    def append(self, meta: dict[str, Any], body: bytes, blob: str | None) -> int:
        """Add a record to the batch; call holding mutation_lock. Returns its sequence number."""
        with self._cond:
            if self._broken is not None:
                raise JournalBroken(str(self._broken))
            seq = self._appended + 1
            data = journal_file.encode({**meta, "seq": seq, "blob": blob}, b"" if blob else body)
            self._pending.append(data)
            self._appended = seq
            if len(self._pending) == 1:
                self._cond.notify_all()  # wake the flusher
            self._bytes += len(data)
            self._records += 1
            if blob is not None:
                self._in_flight_blobs[blob] -= 1
                if self._in_flight_blobs[blob] <= 0:
                    del self._in_flight_blobs[blob]
                self._segments[-1][2].add(blob)
            return seq

    def wait_durable(self, seq: int) -> None:
        """Return once record `seq` is on disk."""
        with self._cond:
            while self._durable < seq:
                if self._broken is not None:
                    raise JournalBroken(str(self._broken))
                self._cond.wait()

    def wait_for_reads(self) -> None:
        """Hold a read's response until any change it may have seen is durable."""
        if not self.mutation_lock.locked() and self._durable >= self._appended:
            return
        # A mutation under way may have shown a read part of its change: wait for its record.
        with self.mutation_lock:
            target = self._appended
        self.wait_durable(target)

    @contextlib.contextmanager
    def mutating(self) -> Iterator[None]:
        """Hold the mutation lock for one request; changes happen one request at a time."""
        with self.mutation_lock:
            self._holder.active = True
            try:
                yield
            finally:
                self._holder.active = False

    @contextlib.contextmanager
    def mutation_lock_released(self) -> Iterator[None]:
        """Let other mutations run while this one blocks on purpose (an SQS long poll)."""
        if not getattr(self._holder, "active", False):
            yield
            return
        self.mutation_lock.release()
        try:
            yield
        finally:
            self.mutation_lock.acquire()

    # -- compaction --

    def should_compact(self, snapshot_bytes: int) -> bool:
        return self._bytes >= max(COMPACT_MIN_BYTES, snapshot_bytes) or self._records >= max(
            self._compact_min_records, snapshot_bytes // BYTES_PER_RECORD_OF_SNAPSHOT
        )

    def rotate(self) -> int:
        """Flush, start a new segment, and return the last sequence number so far. Call with
        the gate held exclusively, so no record is appended meanwhile."""
        with self._cond:
            while self._durable < self._appended:
                if self._broken is not None:
                    raise JournalBroken(str(self._broken))
                self._cond.wait()
            if self._records:
                os.close(self._fd)
                self._open_segment(self._appended + 1)
            return self._appended

    def forget_through(self, seq: int) -> None:
        """Delete the segments whose records are all at or below `seq` (saved in a snapshot)."""
        with self._cond:
            kept = [self._segments[-1]]
            for current, following in zip(self._segments, self._segments[1:], strict=False):
                if following[0] <= seq + 1:
                    current[1].unlink(missing_ok=True)
                else:
                    kept.insert(-1, current)
            removed = len(self._segments) - len(kept)
            self._segments = kept
        if removed:
            fsync_directory(self.directory)

    def pinned_blobs(self) -> set[str]:
        """Blobs that records not yet compacted refer to; call holding the blob store's lock."""
        with self._cond:
            pinned = set(self._in_flight_blobs)
            for _, _, blobs in self._segments:
                pinned |= blobs
            return pinned

    def close(self) -> None:
        """Flush what is pending and stop the flusher."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._flusher.join()
        with self._cond:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _flush_forever(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                batch, upto, fd = self._pending, self._appended, self._fd
                self._pending = []
            # Outside the lock: requests go on appending (and moto on working) meanwhile.
            error = self._write(fd, batch)
            with self._cond:
                if error is None:
                    self._durable = upto
                else:
                    self._fail(error)
                self._cond.notify_all()
                if error is not None:
                    return

    # -- files --

    def _open_segment(self, first_seq: int) -> None:
        path = self.directory / journal_file.segment_name(first_seq)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        fsync_directory(self.directory)
        self._segments.append((first_seq, path, set()))
        self._bytes = self._records = 0

    @staticmethod
    def _write(fd: int, batch: list[bytes]) -> OSError | None:
        data = memoryview(b"".join(batch))
        try:
            while data:
                written = os.write(fd, data)
                data = data[written:]
            os.fdatasync(fd)
        except OSError as error:
            return error
        return None

    def _fail(self, error: OSError) -> None:
        """Refuse everything from now on: the file may end in a partial batch."""
        if self._broken is None:
            log.error("the journal cannot be written (%s); refusing further writes", error)
        self._broken = error
        self._cond.notify_all()
