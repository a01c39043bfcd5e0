"""When an environment's health reaches the control plane, and as what.

The supervisors tick every second, and each tick gives a Health. Passing each one on would turn
an environment UNAVAILABLE for a component that restarts after a crash, and flood the store
with the same answer. So:

- healthy is reported at once (recovery is never held back);
- a set of processes still starting is no verdict at all;
- unhealthy is reported only once it has lasted UNAVAILABLE_AFTER_SECONDS;
- an unchanged verdict is repeated every REPORT_EVERY_SECONDS, so that a control plane that
  missed one (a restart, a failed write) hears it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from environments.airflow.runtime.supervisor import Health

# A component may be down this long (a restart after a crash) before the environment is
# reported UNAVAILABLE; recovery is reported at once.
UNAVAILABLE_AFTER_SECONDS = 30.0
REPORT_EVERY_SECONDS = 5.0

# Told when an environment's health changes: (name, healthy, reason).
HealthListener = Callable[[str, bool, str], None]


class HealthVerdicts:
    def __init__(
        self, listener: HealthListener | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._listener = listener
        self._clock = clock
        self._unhealthy_since: dict[str, float] = {}
        self._reported: dict[str, tuple[bool, float]] = {}

    def observe(self, name: str, health: Health) -> None:
        now = self._clock()
        verdict: bool | None
        if health.healthy:
            self._unhealthy_since.pop(name, None)
            verdict = True
        elif health.starting:  # a fresh set coming up is no failure
            self._unhealthy_since.pop(name, None)
            verdict = None
        else:
            since = self._unhealthy_since.setdefault(name, now)
            verdict = False if now - since >= UNAVAILABLE_AFTER_SECONDS else None
        if verdict is None or self._listener is None:
            return
        last = self._reported.get(name)
        if last is None or last[0] != verdict or now - last[1] >= REPORT_EVERY_SECONDS:
            self._reported[name] = (verdict, now)
            self._listener(name, verdict, health.reason)

    def forget(self, name: str) -> None:
        self._unhealthy_since.pop(name, None)
        self._reported.pop(name, None)
