"""Whether the backends may have changed since the last snapshot.

Mutating calls always count. Read-only calls usually change nothing, but moto builds a region's
backend on its first use (EC2 then creates a default VPC with fresh random ids), so a read-only
call that grew the set of backends counts too; otherwise those ids would differ after a restart.
"""

from __future__ import annotations

from moto.core.base_backend import BackendDict


def backend_shape() -> tuple[int, int, int]:
    """How many services, accounts and region backends exist: cheap to compute per request."""
    try:
        services = list(BackendDict._instances)
        accounts = [account for service in services for account in list(service.values())]
        regions = sum(len(account) for account in accounts)
    except RuntimeError:
        # Another request grew a dict while we counted: that is a change in itself.
        return (-1, -1, -1)
    return (len(services), len(accounts), regions)


class ChangeTracker:
    def __init__(self) -> None:
        self._dirty = False
        self._shape = backend_shape()

    @property
    def dirty(self) -> bool:
        return self._dirty

    def mark(self) -> None:
        self._dirty = True

    def note_request(self, mutating: bool) -> None:
        if mutating or backend_shape() != self._shape:
            self._dirty = True

    def take(self) -> bool:
        """Return whether there were changes and start afresh; call with the gate held."""
        was_dirty = self._dirty
        self._dirty = False
        self._shape = backend_shape()
        return was_dirty
