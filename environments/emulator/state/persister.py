"""The background thread that writes snapshots.

A snapshot takes the gate exclusively, pickles all backends in use (S3 bodies aside) into
memory and lets requests go on; then, outside the gate, it writes new S3 bodies to the blob
store and the snapshot to a new generation file.

With a journal (the default), snapshots only compact it: about every `interval` seconds the
thread checks whether the journal has grown as large as the last snapshot (see
Journal.should_compact), and if so snapshots, then deletes the journal segments every kept
snapshot holds. Durability does not depend on it.

Without one (the snapshot-only mode), it snapshots about every `interval` seconds if anything
changed, and a SIGKILL loses the changes of the last interval plus the time a snapshot takes.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time

from environments.emulator.state import backends
from environments.emulator.state.changes import ChangeTracker
from environments.emulator.state.gate import GateTimeout, RequestGate
from environments.emulator.state.journal import Journal, JournalBroken
from environments.emulator.state.pickling import dump_state
from environments.emulator.state.s3_bodies import BodyCollector
from environments.emulator.state.store import StateStore

log = logging.getLogger(__name__)

GATE_TIMEOUT = 5.0
GARBAGE_INTERVAL = 30.0
# A snapshot slower than this widens what a crash can lose; worth telling the operator.
SLOW_SNAPSHOT = 1.0

# What pickle raises for an object it cannot save.
_UNPICKLABLE = (pickle.PicklingError, TypeError, AttributeError)


class Persister:
    def __init__(
        self,
        store: StateStore,
        gate: RequestGate,
        changes: ChangeTracker,
        interval: float = 0.5,
        journal: Journal | None = None,
        last_snapshot_bytes: int = 0,
    ) -> None:
        self._store = store
        self._gate = gate
        self._changes = changes
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aws-state", daemon=True)
        self._excluded: set[str] = set()
        self._last_garbage = time.monotonic()
        self._failing = False
        self._journal = journal
        self._last_snapshot_bytes = last_snapshot_bytes

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write a final snapshot, after which no request may change state any more."""
        self._stop.set()
        self._thread.join()
        try:
            self._gate.close(GATE_TIMEOUT)
        except GateTimeout:
            log.warning("requests still running at shutdown; writing the final snapshot anyway")
        try:
            journal_seq = self._journal.rotate() if self._journal else 0
        except JournalBroken as error:
            # What the journal holds is a good prefix; the next start replays it.
            log.error("no final snapshot: the journal cannot be written (%s)", error)
            return
        self._write(self._capture(), journal_seq)
        self._collect_garbage()
        if self._journal:
            self._journal.close()

    def save_now(self, journal_seq: int) -> None:
        """Snapshot the state as it is, holding the journal up to `journal_seq`; for start-up,
        before any request is served."""
        self._write(self._capture(), journal_seq)

    def _due(self) -> bool:
        if self._journal is not None:
            return self._journal.should_compact(self._last_snapshot_bytes)
        return self._changes.dirty

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if not self._due():
                continue
            try:
                self.snapshot()
                if self._failing:
                    log.info("snapshots are being written again")
                self._failing = False
            except Exception as error:
                # Keep serving and try again next round; report once per spell of failures.
                self._changes.mark()
                if not self._failing:
                    log.error("could not write a snapshot: %s", error, exc_info=True)
                self._failing = True

    def snapshot(self) -> None:
        started = time.monotonic()
        with self._gate.exclusive(GATE_TIMEOUT):
            self._changes.take()
            journal_seq = self._journal.rotate() if self._journal else 0
            captured = self._capture()
        held = time.monotonic() - started
        self._write(captured, journal_seq)
        took = time.monotonic() - started
        if took > SLOW_SNAPSHOT:
            log.warning(
                "a snapshot of %d bytes took %.1f s (requests paused for %.1f s)",
                len(captured[0]),
                took,
                held,
            )
        if time.monotonic() - self._last_garbage > GARBAGE_INTERVAL:
            self._collect_garbage()
            self._last_garbage = time.monotonic()

    def _collect_garbage(self) -> None:
        self._store.collect_garbage(self._journal.pinned_blobs if self._journal else None)

    def _capture(self) -> tuple[bytes, BodyCollector, list[str]]:
        """Pickle every backend in use; call with the gate held."""
        while True:
            states = [
                backends.capture(registry)
                for registry in backends.registries_in_use()
                if registry.service_name not in self._excluded
            ]
            bodies = BodyCollector(self._store.blobs)
            try:
                payload = dump_state(states, bodies)
            except _UNPICKLABLE:
                if not self._exclude_unpicklable(states):
                    raise
                continue
            return payload, bodies, [state.service_name for state in states]

    def _write(self, captured: tuple[bytes, BodyCollector, list[str]], journal_seq: int) -> None:
        payload, bodies, services = captured
        for digest, data in bodies.pending.items():
            self._store.blobs.write(digest, data)
        self._store.blobs.sync()
        self._store.save(payload, bodies.referenced, services, journal_seq)
        self._last_snapshot_bytes = len(payload)
        if self._journal is not None:
            self._journal.forget_through(self._store.oldest_journal_seq())

    def _exclude_unpicklable(self, states: list[backends.ServiceState]) -> bool:
        """Stop saving the services that cannot be pickled, so the others still persist."""
        found = False
        for state in states:
            try:
                dump_state([state], BodyCollector(self._store.blobs))
            except _UNPICKLABLE as error:
                log.warning(
                    "the %s service holds state that cannot be saved (%s); it will not "
                    "survive a restart",
                    state.service_name,
                    error,
                )
                self._excluded.add(state.service_name)
                found = True
        return found
