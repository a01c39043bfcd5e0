"""The reconciler: drives environments from their transitional status to a resting one.

Any number of replicas may run it against one store. Each environment is worked on only
under a lease row (owner + expiry), renewed by a heartbeat while the work runs. Each finished
step is recorded before the next starts, so a replica killed at any point leaves work that
the next claimant resumes where it stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from environments import store
from environments.errors import ConcurrentModification
from environments.host import HostServices
from environments.naming import Placement
from environments.plumbing.repeats import RepeatLimiter
from environments.provisioning.advance import Advancing
from environments.provisioning.drift import DriftWatch
from environments.provisioning.retries import RetryPolicy
from environments.provisioning.step import Step
from environments.store import Store

log = logging.getLogger(__name__)
_repeats = RepeatLimiter(log, interval=300.0)

LEASE_TTL_SECONDS = 15.0


class Reconciler(Advancing):
    def __init__(
        self,
        db: Store,
        placement: Placement,
        steps: Sequence[Step],
        *,
        owner: str,
        services: HostServices,
        workers: int = 8,
        poll_interval: float = 0.5,
        lease_ttl: float = LEASE_TTL_SECONDS,
        retry: RetryPolicy | None = None,
        drift_interval: float | None = None,
    ) -> None:
        """`drift_interval`: seconds between checks for resources deleted from outside
        (provisioning.drift); None checks never."""
        self._db = db
        self._placement = placement
        self._steps = list(steps)
        self.owner = owner
        self._workers = workers
        self._poll_interval = poll_interval
        self._services = services
        self._lease_ttl = lease_ttl
        self._retry_policy = retry or RetryPolicy()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._active: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._threads: list[threading.Thread] = []
        self.drift = DriftWatch(
            db,
            placement,
            services,
            [step.name for step in self._steps],
            owner=owner,
            interval=drift_interval or 0.0,
            wake=self.wake,
        )
        self._drift_interval = drift_interval

    # --- running ----------------------------------------------------------------------

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="reconcile")
        for target, name in ((self._loop, "reconciler"), (self._heartbeat, "lease-heartbeat")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if self._drift_interval:
            self.drift.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self.drift.stop()
        for thread in self._threads:
            thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        with self._db.transaction() as session:
            for name in list(self._active):
                store.release_lease(session, name, self.owner)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._dispatch()
            except Exception as err:  # the loop must survive a database hiccup
                _repeats.error(("pass", repr(err)), "reconciler pass failed", exc_info=True)
            self._wake.wait(self._poll_interval)
            self._wake.clear()

    def _dispatch(self) -> None:
        assert self._pool is not None
        with self._lock:
            for name in [n for n, f in self._active.items() if f.done()]:
                del self._active[name]
            free = self._workers - len(self._active)
        if free <= 0:
            return
        now = time.time()
        with self._db.transaction() as session:
            candidates = store.claimable_names(session, now, free + len(self._active))
        for name in candidates:
            if free <= 0 or self._stop.is_set():
                break
            with self._lock:
                if name in self._active:
                    continue
            with self._db.transaction() as session:
                claimed = store.try_lease(session, name, self.owner, now, self._lease_ttl)
            if not claimed:
                continue
            with self._lock:
                self._active[name] = self._pool.submit(self._work, name)
            free -= 1

    def _heartbeat(self) -> None:
        while not self._stop.wait(self._lease_ttl / 3):
            with self._lock:
                names = [n for n, f in self._active.items() if not f.done()]
            if not names:
                continue
            try:
                with self._db.transaction() as session:
                    for name in names:
                        store.renew_lease(session, name, self.owner, time.time(), self._lease_ttl)
            except Exception as err:
                _repeats.error(("renew", repr(err)), "lease renewal failed", exc_info=True)

    def _work(self, name: str) -> None:
        try:
            self.reconcile(name)
        except ConcurrentModification:
            log.info(
                "environment %s changed under the reconciler; it will be picked up again", name
            )
        except Exception as err:
            _repeats.error(
                (name, repr(err)), "reconciling %s failed unexpectedly", name, exc_info=True
            )
            self._defer(name, f"the reconciler: unexpected {type(err).__name__}: {err}")
        finally:
            with self._db.transaction() as session:
                store.release_lease(session, name, self.owner)
            self._wake.set()

    # --- one environment --------------------------------------------------------------

    def run_until_idle(self, timeout: float = 30.0) -> None:
        """Reconcile everything claimable in this thread until nothing is left (for tools)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self._db.transaction() as session:
                names = store.claimable_names(session, time.time(), 100)
            if not names:
                return
            for name in names:
                with self._db.transaction() as session:
                    claimed = store.try_lease(session, name, self.owner, time.time(), 60)
                if claimed:
                    self._work(name)
            time.sleep(0.05)
