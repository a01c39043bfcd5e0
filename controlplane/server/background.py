"""The background worker: the reconciler, the DAG sync passes and the DAG reports.

It runs in a process of its own so that its work never competes with requests for the API
processes' interpreter lock. SIGTERM (from the supervisor, or from the kernel when the
supervisor dies) stops it in order: the reconciler finishes its step and releases its leases.
Whatever a SIGKILL interrupts, the restarted worker resumes: each finished step is recorded.
"""

from __future__ import annotations

import logging
import signal
import time

from controlplane.credentials import KeyPair
from controlplane.runtime import build_background
from controlplane.server.wakeups import WakeupPipe
from controlplane.settings import Settings

log = logging.getLogger("airdock.background")


def run_background(
    settings: Settings,
    admin: KeyPair,
    aws_endpoint: str | None,
    wakeups: WakeupPipe,
    mwaa_endpoint: str | None = None,
) -> int:
    stopping: list[int] = []

    def ask_to_stop(signum: int, _frame: object) -> None:
        # Only a flag: the main thread notices it within a tick. Setting an Event here could
        # deadlock with a main thread waiting on that Event.
        stopping.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, ask_to_stop)
    runtime = build_background(settings, admin, aws_endpoint, mwaa_endpoint)
    runtime.start()
    wakeups.listen(runtime.reconciler.wake)
    while not stopping:
        time.sleep(0.2)
    runtime.stop()
    return 0
