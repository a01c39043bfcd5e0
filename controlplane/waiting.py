"""Waiting for an environment to settle, for scripts and for `airdock env wait`.

botocore has no MWAA waiters. In a script, with any boto3 `mwaa` client:

    from controlplane.waiting import wait_for_environment

    mwaa.update_environment(Name="demo", MaxWorkers=5)
    env = wait_for_environment(mwaa, "demo", until="AVAILABLE", timeout=600)

It returns the Environment (None when waiting for DELETED), raises `EnvironmentFailed` when
the environment settles in another status (CREATE_FAILED, ...), carrying LastUpdate.Error, and
`WaitTimedOut` when the time runs out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# Statuses the reconciler leaves an environment in; DELETED stands for "gone".
SETTLED = ("AVAILABLE", "CREATE_FAILED", "UPDATE_FAILED", "UNAVAILABLE", "DELETED")
DELETED = "DELETED"


@dataclass(frozen=True)
class Snapshot:
    """One look at an environment: its status and, where the source has them, details."""

    status: str
    environment: dict[str, Any] | None = None  # GetEnvironment's shape, or progress
    error: str | None = None  # LastUpdate.Error as "CODE: message"
    step: dict[str, Any] = field(default_factory=dict)
    components: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        """One line: the status, the step the reconciler is on, components that are not
        healthy."""
        parts = [self.status]
        current = self.step.get("Current")
        if current:
            text = f"step {self.step.get('Done', 0) + 1}/{self.step.get('Total', '?')} {current}"
            if self.step.get("Attempts"):
                text += f" (attempt {self.step['Attempts'] + 1}"
                if "RetryInSeconds" in self.step:
                    text += f", retry in {self.step['RetryInSeconds']:.0f}s"
                text += ")"
            parts.append(text)
        if self.components:
            states = ", ".join(f"{c.get('Name')} {c.get('State')}" for c in self.components)
            parts.append(f"components: {states}")
        return " - ".join(parts)


class WaitError(Exception):
    def __init__(self, message: str, last: Snapshot | None) -> None:
        super().__init__(message)
        self.message = message
        self.last = last


class EnvironmentFailed(WaitError):
    """The environment settled in a status that was not asked for."""


class WaitTimedOut(WaitError):
    """The time ran out before the environment reached a wanted status."""


def error_text(last_update: dict[str, Any] | None) -> str | None:
    error = (last_update or {}).get("Error") or {}
    if not error:
        return None
    return f"{error.get('ErrorCode', 'Error')}: {error.get('ErrorMessage', '')}".strip()


def normalise_until(until: str | Iterable[str]) -> frozenset[str]:
    wanted = frozenset([until] if isinstance(until, str) else until)
    unknown = sorted(wanted - set(SETTLED))
    if not wanted or unknown:
        raise ValueError(
            f"cannot wait for {', '.join(unknown) or 'nothing'}: choose from {', '.join(SETTLED)}"
        )
    return wanted


def wait(
    look: Callable[[], Snapshot],
    name: str,
    until: frozenset[str],
    *,
    timeout: float,
    interval: float = 1.0,
    on_change: Callable[[Snapshot], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Snapshot:
    """Look at the environment every `interval` seconds until its status is in `until`.

    `on_change` sees every snapshot whose description differs from the last one.
    """
    deadline = clock() + timeout
    shown: str | None = None
    while True:
        snapshot = look()
        if on_change is not None and snapshot.describe() != shown:
            shown = snapshot.describe()
            on_change(snapshot)
        if snapshot.status in until:
            return snapshot
        if snapshot.status == DELETED:
            raise EnvironmentFailed(f"environment {name} does not exist", snapshot)
        if snapshot.status in SETTLED:
            reason = f": {snapshot.error}" if snapshot.error else ""
            raise EnvironmentFailed(
                f"environment {name} is {snapshot.status}, not {' or '.join(sorted(until))}"
                + reason,
                snapshot,
            )
        left = deadline - clock()
        if left <= 0:
            raise WaitTimedOut(
                f"environment {name} is still {snapshot.describe()} after {timeout:g} s", snapshot
            )
        time.sleep(min(interval, left))


def look_with_client(client: Any, name: str) -> Callable[[], Snapshot]:
    """A look through a boto3/botocore `mwaa` client's GetEnvironment."""

    def look() -> Snapshot:
        try:
            env = client.get_environment(Name=name)["Environment"]
        except client.exceptions.ResourceNotFoundException:
            return Snapshot(DELETED)
        return Snapshot(env["Status"], env, error_text(env.get("LastUpdate")))

    return look


def wait_for_environment(
    client: Any,
    name: str,
    *,
    until: str | Iterable[str] = "AVAILABLE",
    timeout: float = 3600.0,
    interval: float = 1.0,
    on_change: Callable[[Snapshot], None] | None = None,
) -> dict[str, Any] | None:
    """Wait with a boto3 `mwaa` client until environment `name` is in `until`; return its
    Environment (None for DELETED). See the module docstring for the errors."""
    wanted = normalise_until(until)
    snapshot = wait(
        look_with_client(client, name),
        name,
        wanted,
        timeout=timeout,
        interval=interval,
        on_change=on_change,
    )
    return snapshot.environment
