"""Entry point of the embedded AWS child process: moto's server on a loopback port.

With --state-dir the server is durable: before it listens it restores the newest good snapshot
and replays the journal written since; every mutating request is journaled, and durable, before
its response leaves; snapshots compact the journal in the background, and a final one is
written on SIGTERM or SIGINT (see environments.emulator.state). `--durability snapshot` keeps
the older mode without a journal, where a crash loses the changes of the last interval.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
import threading
from pathlib import Path

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from environments.emulator.state import clock, journal_file, long_poll, randomness, s3_bodies
from environments.emulator.state.changes import ChangeTracker
from environments.emulator.state.errors import IncompatibleState
from environments.emulator.state.gate import RequestGate
from environments.emulator.state.journal import Journal
from environments.emulator.state.middleware import PersistenceMiddleware
from environments.emulator.state.persister import Persister
from environments.emulator.state.replay import WsgiApp, replay
from environments.emulator.state.store import Restored, StateDirBusy, StateStore

log = logging.getLogger("airdock.aws_server")

# Exit status when saved state exists but cannot be used; the log says why.
EXIT_BAD_STATE = 3


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Airdock's embedded AWS (moto)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument(
        "--durability",
        choices=("journal", "snapshot"),
        default="journal",
        help="journal: every change is durable before it is acknowledged (default); "
        "snapshot: periodic snapshots only, a crash loses the last interval's changes",
    )
    parser.add_argument(
        "--snapshot-interval",
        type=float,
        default=0.5,
        help="seconds between checks for a snapshot (snapshot mode: between snapshots)",
    )
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=20.0,
        help="seconds to wait for a predecessor to release the state dir",
    )
    args = parser.parse_args(argv)
    if not is_loopback(args.host):
        # The embedded AWS checks no credentials: it must never be reachable from outside.
        parser.error(f"--host must be a loopback address, not {args.host}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    s3_bodies.track_body_digests()
    journaled = args.state_dir is not None and args.durability == "journal"
    if journaled:
        randomness.install()
        clock.install()
    store, restored = (
        _open_store(args.state_dir, args.lock_wait) if args.state_dir else (None, Restored())
    )
    gate, changes = RequestGate(), ChangeTracker()
    moto_app = DomainDispatcherApplication(create_backend_app)
    journal = None
    if store and journaled:
        journal = _recover(store, restored, moto_app, gate, changes)
    elif restored.skipped:
        # Write a good newest generation soon, rather than after the next change.
        changes.mark()
    long_poll.wait_outside_the_gate(gate, changes, journal)
    app = PersistenceMiddleware(moto_app, gate, changes, journal)
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler
    )
    persister = (
        Persister(store, gate, changes, args.snapshot_interval, journal, restored.snapshot_bytes)
        if store
        else None
    )

    # Stop signals are blocked in every thread and taken synchronously by sigwait below. A
    # Python handler that sets an Event can deadlock: it runs in the main thread, possibly
    # while that thread is inside Event.wait() holding the very lock set() needs.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    serving = threading.Thread(target=server.serve_forever, name="aws-server", daemon=True)
    serving.start()
    if persister:
        persister.start()
    log.info("serving on http://%s:%d", args.host, args.port)
    signal.sigwait(stop_signals)
    server.shutdown()
    if persister:
        persister.stop()
        log.info("final snapshot written")
    server.server_close()


def _recover(
    store: StateStore,
    restored: Restored,
    app: WsgiApp,
    gate: RequestGate,
    changes: ChangeTracker,
) -> Journal:
    """Replay the journal over the restored snapshot and open it for appending."""
    directory = store.root / "journal"
    found = journal_file.scan(directory, after=restored.journal_seq)
    long_poll.wait_outside_the_gate(gate, changes)
    same = replay(app, found.records, store.blobs)
    last = found.records[-1].seq if found.records else restored.journal_seq
    if found.records:
        log.info(
            "replayed %d journal records (%d answered as before) after snapshot record %d",
            len(found.records),
            same,
            restored.journal_seq,
        )
    for problem in found.damage:
        # Only the tail a crash tore can be damaged; it was never acknowledged.
        log.warning("journal replay stopped at %s", problem)
    if found.records or found.damage or restored.skipped:
        # Start from a snapshot that holds everything replayed, so a later start does not
        # read past damage, and so repeated crashes do not grow the journal.
        Persister(store, gate, changes).save_now(last)
    blobs = {record.meta["blob"] for record in found.records if record.meta.get("blob")}
    return Journal(directory, store.blobs, next_seq=last + 1, old_blobs=blobs)


def _open_store(state_dir: Path, lock_wait: float) -> tuple[StateStore, Restored]:
    try:
        store = StateStore(state_dir, lock_wait)
        restored = store.load()
    except (IncompatibleState, StateDirBusy) as error:
        log.error("%s", error)
        sys.exit(EXIT_BAD_STATE)
    if restored.generation is None:
        log.info("no saved state in %s; starting empty", state_dir)
    return store, restored


if __name__ == "__main__":
    main()
