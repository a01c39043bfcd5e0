"""The journal on its own: framing, torn tails, group commit, compaction, and reads held back."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from environments.emulator.state import journal_file
from environments.emulator.state.blobs import BlobStore
from environments.emulator.state.changes import ChangeTracker
from environments.emulator.state.gate import RequestGate
from environments.emulator.state.journal import Journal
from environments.emulator.state.middleware import PersistenceMiddleware

AUTH = (
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=0"
)


def open_journal(tmp_path: Path, next_seq: int = 1) -> Journal:
    return Journal(tmp_path / "journal", BlobStore(tmp_path / "blobs"), next_seq)


def append(journal: Journal, name: str) -> int:
    with journal.mutating():
        return journal.append({"environ": {"PATH_INFO": f"/{name}"}}, name.encode(), None)


def paths(tmp_path: Path, after: int = 0) -> list[str]:
    scan = journal_file.scan(tmp_path / "journal", after)
    assert scan.damage == []
    return [r.meta["environ"]["PATH_INFO"] for r in scan.records]


def test_records_from_many_threads_all_land_in_order(tmp_path: Path) -> None:
    journal = open_journal(tmp_path)

    def write(thread: int) -> None:
        for i in range(50):
            journal.wait_durable(append(journal, f"t{thread}-{i}"))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    scan = journal_file.scan(tmp_path / "journal")
    assert scan.damage == []
    assert [r.seq for r in scan.records] == list(range(1, 401))
    assert sorted(r.body.decode() for r in scan.records) == sorted(
        f"t{n}-{i}" for n in range(8) for i in range(50)
    )


def test_a_torn_or_damaged_tail_ends_the_scan_cleanly(tmp_path: Path) -> None:
    journal = open_journal(tmp_path)
    for name in ("a", "b", "c"):
        journal.wait_durable(append(journal, name))
    journal.close()
    segment = journal_file.segments(tmp_path / "journal")[-1][1]
    whole = segment.read_bytes()
    last = journal_file.encode({"seq": 3, "environ": {"PATH_INFO": "/c"}, "blob": None}, b"c")

    for cut in (1, 7, len(last) // 2, len(last) - 1):
        segment.write_bytes(whole[:-cut])
        scan = journal_file.scan(tmp_path / "journal")
        assert [r.seq for r in scan.records] == [1, 2]
        assert len(scan.damage) == 1

    flipped = bytearray(whole)
    flipped[-2] ^= 0xFF
    segment.write_bytes(bytes(flipped))
    scan = journal_file.scan(tmp_path / "journal")
    assert [r.seq for r in scan.records] == [1, 2]
    assert "checksum" in scan.damage[0]


def test_a_read_waits_until_what_it_may_have_seen_is_durable(tmp_path: Path) -> None:
    journal = open_journal(tmp_path)
    appended = threading.Event()
    release = threading.Event()

    def mutation() -> None:
        # Appends, and then lingers under the lock without waiting for durability itself.
        with journal.mutating():
            journal.append({"environ": {"PATH_INFO": "/slow"}}, b"", None)
            appended.set()
            release.wait()

    writer = threading.Thread(target=mutation)
    writer.start()
    appended.wait()
    read_done = threading.Event()

    def read() -> None:
        journal.wait_for_reads()
        read_done.set()

    reader = threading.Thread(target=read)
    reader.start()
    release.set()
    reader.join()
    writer.join()
    # The read returned only once the record it may have seen was on disk.
    assert read_done.is_set()
    assert paths(tmp_path) == ["/slow"]


def test_compaction_deletes_only_segments_every_snapshot_holds(tmp_path: Path) -> None:
    journal = open_journal(tmp_path)
    for name in ("a", "b"):
        journal.wait_durable(append(journal, name))
    assert journal.rotate() == 2
    journal.wait_durable(append(journal, "c"))
    assert journal.rotate() == 3
    journal.wait_durable(append(journal, "d"))

    journal.forget_through(1)  # the oldest kept snapshot holds only record 1
    assert paths(tmp_path) == ["/a", "/b", "/c", "/d"]
    journal.forget_through(2)
    assert paths(tmp_path, after=2) == ["/c", "/d"]
    assert paths(tmp_path, after=3) == ["/d"]
    # Read from an older point, the deleted records are a gap: reported, never skipped over.
    assert journal_file.scan(tmp_path / "journal").damage
    journal.close()


def test_large_bodies_go_to_blobs_and_stay_pinned_until_compacted(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    journal = Journal(tmp_path / "journal", blobs, 1)
    body = b"x" * (1 << 20)
    digest = journal.stash_body(body)
    assert digest is not None and blobs.read(digest) == body
    assert digest in journal.pinned_blobs()
    with journal.mutating():
        seq = journal.append({"environ": {}}, body, digest)
    journal.wait_durable(seq)
    record = journal_file.scan(tmp_path / "journal").records[0]
    assert record.body == b"" and record.meta["blob"] == digest
    assert digest in journal.pinned_blobs()
    journal.rotate()
    journal.forget_through(seq)
    assert digest not in journal.pinned_blobs()
    journal.close()


def test_a_journal_that_cannot_be_written_refuses_instead_of_acknowledging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing disk (EIO from fdatasync) must not turn into a 200 for a write that is not
    durable: the waiting request and every later write get a clear ServiceUnavailable."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.test import Client

    journal = open_journal(tmp_path)
    app = PersistenceMiddleware(
        DomainDispatcherApplication(create_backend_app), RequestGate(), ChangeTracker(), journal
    )
    client = Client(app)
    headers = {"Host": "s3.amazonaws.com", "Authorization": AUTH}
    assert client.put("/healthy-bucket", headers=headers).status_code == 200

    def failing_sync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing_sync)
    for bucket in ("lost-bucket", "later-bucket"):
        refused = client.put(f"/{bucket}", headers=headers)
        assert refused.status_code == 503
        assert b"<Code>ServiceUnavailable</Code>" in refused.data
    # Nor may a read show the write that was not made durable.
    assert client.get("/lost-bucket", headers=headers).status_code == 503
    monkeypatch.undo()
    # The refused write may have reached the disk (not acknowledged is not lost); the one
    # after the failure was never journaled.
    journaled = [
        r.meta["environ"]["PATH_INFO"] for r in journal_file.scan(tmp_path / "journal").records
    ]
    assert journaled[0] == "/healthy-bucket"
    assert "/later-bucket" not in journaled
