"""Environment statuses and the transitions between them, declared as data.

Requests move an environment into a transitional status; the reconciler moves it out. Any
transition not listed here is a bug or a request that MWAA would refuse.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    CREATING = "CREATING"
    CREATE_FAILED = "CREATE_FAILED"
    AVAILABLE = "AVAILABLE"
    UPDATING = "UPDATING"
    DELETING = "DELETING"
    DELETED = "DELETED"
    UNAVAILABLE = "UNAVAILABLE"
    UPDATE_FAILED = "UPDATE_FAILED"
    ROLLING_BACK = "ROLLING_BACK"
    CREATING_SNAPSHOT = "CREATING_SNAPSHOT"
    PENDING = "PENDING"
    MAINTENANCE = "MAINTENANCE"


class Event(StrEnum):
    UPDATE_REQUESTED = "update_requested"
    DELETE_REQUESTED = "delete_requested"
    CONVERGED = "converged"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    # An update failed and no configuration ever converged, so there is nothing to restore.
    FAILED_WITHOUT_ROLLBACK = "failed_without_rollback"
    # The runtime's health: a component that cannot be kept up, and its recovery.
    UNHEALTHY = "unhealthy"
    HEALTHY = "healthy"
    # Something the environment owns was deleted from outside and was (not) made again.
    REPAIRED = "repaired"
    REPAIR_FAILED = "repair_failed"


# (from, event) -> to. Creation has no "from": a new row starts in CREATING.
TRANSITIONS: dict[tuple[Status, Event], Status] = {
    (Status.AVAILABLE, Event.UPDATE_REQUESTED): Status.UPDATING,
    (Status.UPDATE_FAILED, Event.UPDATE_REQUESTED): Status.UPDATING,
    (Status.AVAILABLE, Event.DELETE_REQUESTED): Status.DELETING,
    (Status.CREATE_FAILED, Event.DELETE_REQUESTED): Status.DELETING,
    (Status.UPDATE_FAILED, Event.DELETE_REQUESTED): Status.DELETING,
    (Status.UNAVAILABLE, Event.DELETE_REQUESTED): Status.DELETING,
    (Status.CREATING, Event.CONVERGED): Status.AVAILABLE,
    (Status.CREATING, Event.FAILED): Status.CREATE_FAILED,
    (Status.UPDATING, Event.CONVERGED): Status.AVAILABLE,
    (Status.UPDATING, Event.FAILED): Status.ROLLING_BACK,
    (Status.UPDATING, Event.FAILED_WITHOUT_ROLLBACK): Status.UPDATE_FAILED,
    (Status.ROLLING_BACK, Event.ROLLED_BACK): Status.UPDATE_FAILED,
    (Status.ROLLING_BACK, Event.ROLLBACK_FAILED): Status.UNAVAILABLE,
    (Status.DELETING, Event.CONVERGED): Status.DELETED,
    (Status.AVAILABLE, Event.UNHEALTHY): Status.UNAVAILABLE,
    (Status.UNAVAILABLE, Event.HEALTHY): Status.AVAILABLE,
    (Status.AVAILABLE, Event.REPAIRED): Status.AVAILABLE,
    (Status.UPDATE_FAILED, Event.REPAIRED): Status.UPDATE_FAILED,
    (Status.UNAVAILABLE, Event.REPAIRED): Status.AVAILABLE,
    (Status.AVAILABLE, Event.REPAIR_FAILED): Status.UNAVAILABLE,
    (Status.UPDATE_FAILED, Event.REPAIR_FAILED): Status.UNAVAILABLE,
    (Status.UNAVAILABLE, Event.REPAIR_FAILED): Status.UNAVAILABLE,
}

# Statuses the reconciler must drive forward.
TRANSITIONAL = frozenset({Status.CREATING, Status.UPDATING, Status.ROLLING_BACK, Status.DELETING})

# Why a request is refused in a status, worded like MWAA's own messages.
_REFUSALS = {
    (Status.CREATE_FAILED, Event.UPDATE_REQUESTED): (
        "Environments with CREATE_FAILED status cannot be updated."
    ),
    (Status.DELETED, Event.DELETE_REQUESTED): "Environments with DELETED status cannot be deleted.",
}


class TransitionRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def next_status(current: Status, event: Event) -> Status:
    try:
        return TRANSITIONS[(current, event)]
    except KeyError:
        message = _REFUSALS.get((current, event))
        if message is None:
            verb = "updated" if event is Event.UPDATE_REQUESTED else "deleted"
            if event not in (Event.UPDATE_REQUESTED, Event.DELETE_REQUESTED):
                verb = f"moved by {event.value}"
            message = f"Environments with {current.value} status cannot be {verb}."
        raise TransitionRefused(message) from None
