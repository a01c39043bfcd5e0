"""Entry point of the embedded AWS child process: moto's server on a loopback port.

With --state-dir the server is durable: before it listens it restores the newest good snapshot
and replays the journal written since; every mutating request is journaled, and durable, before
its response leaves; snapshots compact the journal in the background, and a final one is
written on SIGTERM or SIGINT (see environments.emulator.state). `--durability snapshot` keeps
the older mode without a journal, where a crash loses the changes of the last interval.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import logging
import shutil
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

from environments.emulator.moto_memory import defer_instance_type_offerings, share_service_models
from environments.emulator.state import clock, journal_file, long_poll, randomness, s3_bodies
from environments.emulator.state.changes import ChangeTracker
from environments.emulator.state.errors import IncompatibleState
from environments.emulator.state.gate import RequestGate
from environments.emulator.state.journal import COMPACT_MIN_RECORDS, Journal
from environments.emulator.state.middleware import PersistenceMiddleware
from environments.emulator.state.persister import Persister
from environments.emulator.state.replay import WsgiApp, replay
from environments.emulator.state.store import Restored, StateDirBusy, StateStore

log = logging.getLogger("airdock.aws_server")

# Exit status when saved state exists but cannot be used; the log says why.
EXIT_BAD_STATE = 3
JOURNAL_DIR = "journal"


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
        "--compact-min-records",
        type=int,
        default=COMPACT_MIN_RECORDS,
        help="journal records that make a compacting snapshot due, at the least",
    )
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=20.0,
        help="seconds to wait for a predecessor to release the state dir",
    )
    parser.add_argument(
        "--front",
        default=None,
        metavar="MODULE:FACTORY",
        help="a WSGI middleware put in front of moto: FACTORY(app) returns the app to serve "
        "(e.g. one that authenticates and authorizes every request)",
    )
    args = parser.parse_args(argv)
    if not is_loopback(args.host):
        # The embedded AWS checks no credentials: it must never be reachable from outside.
        parser.error(f"--host must be a loopback address, not {args.host}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Before anything (a restored snapshot included) imports moto.ec2 or loads a model.
    defer_instance_type_offerings()
    share_service_models()

    s3_bodies.track_body_digests()
    journaled = args.state_dir is not None and args.durability == "journal"
    # A journal left by the default mode is replayed even in snapshot mode, then dropped, so
    # switching modes neither loses its records nor replays them twice later.
    leftover = not journaled and bool(
        args.state_dir and journal_file.segments(args.state_dir / JOURNAL_DIR)
    )
    if journaled or leftover:
        randomness.install()
        clock.install()
    store, restored = (
        _open_store(args.state_dir, args.lock_wait) if args.state_dir else (None, Restored())
    )
    gate, changes = RequestGate(), ChangeTracker()
    moto_app = DomainDispatcherApplication(create_backend_app)
    journal = None
    if store and journaled:
        journal = _recover(store, restored, moto_app, gate, changes, args.compact_min_records)
    elif store and leftover:
        _recover(store, restored, moto_app, gate, changes, args.compact_min_records).close()
        Persister(store, gate, changes).save_now(0)
        shutil.rmtree(store.root / JOURNAL_DIR)
    elif restored.skipped:
        # Write a good newest generation soon, rather than after the next change.
        changes.mark()
    long_poll.wait_outside_the_gate(gate, changes, journal)
    app = PersistenceMiddleware(moto_app, gate, changes, journal)
    if args.front:
        # Outermost, so a request it refuses reaches neither moto nor the journal.
        app = _front(args.front)(app)
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


def _front(spec: str):
    module, _, factory = spec.partition(":")
    if not module or not factory:
        raise SystemExit(f"--front must be MODULE:FACTORY, not {spec!r}")
    return getattr(importlib.import_module(module), factory)


def _recover(
    store: StateStore,
    restored: Restored,
    app: WsgiApp,
    gate: RequestGate,
    changes: ChangeTracker,
    compact_min_records: int,
) -> Journal:
    """Replay the journal over the restored snapshot and open it for appending."""
    directory = store.root / JOURNAL_DIR
    found = journal_file.scan(directory, after=restored.journal_seq)
    long_poll.wait_outside_the_gate(gate, changes)
    replayed = replay(app, found.records, store.blobs)
    applied = found.records[: replayed.applied]
    last = applied[-1].seq if applied else restored.journal_seq
    if applied:
        log.info(
            "replayed %d journal records (%d of them errors, as they were live) after "
            "snapshot record %d",
            len(applied),
            replayed.errors,
            restored.journal_seq,
        )
    for problem in found.damage:
        # Only the tail a crash tore can be damaged; it was never acknowledged.
        log.warning("journal replay stopped at %s", problem)
    if applied or found.damage or len(applied) < len(found.records) or restored.skipped:
        # Start from a snapshot that holds everything replayed, so a later start does not
        # read past damage, and so repeated crashes do not grow the journal.
        Persister(store, gate, changes).save_now(last)
    blobs = {record.meta["blob"] for record in applied if record.meta.get("blob")}
    return Journal(directory, store.blobs, last + 1, blobs, compact_min_records)


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
