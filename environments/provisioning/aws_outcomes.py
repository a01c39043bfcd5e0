"""Turn botocore failures into step outcomes: transient ones retry, the rest fail clearly."""

from __future__ import annotations

from botocore.exceptions import ClientError

from environments.aws.errors import error_code, is_transient
from environments.provisioning.step import Failed, Outcome, RetryLater


def outcome_for(err: Exception, action: str) -> Outcome:
    """The outcome for an unexpected AWS error while doing `action`."""
    if is_transient(err):
        return RetryLater(f"{action}: {err}")
    return Failed("INTERNAL_ERROR", f"{action} failed: {err}")


def misconfigured(err: ClientError, action: str, message: str) -> Outcome:
    """A transient error during `action` retries; any other means the user's prerequisites
    are wrong, reported as MWAA does with `message` and the AWS error code."""
    if is_transient(err):
        return RetryLater(f"{action}: {err}")
    return Failed("INCORRECT_CONFIGURATION", f"{message} ({error_code(err)}).")
