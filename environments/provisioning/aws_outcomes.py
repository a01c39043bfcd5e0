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


# MWAA's words when the execution role cannot do what the environment needs.
EXECUTION_ROLE_MESSAGE = (
    "You may need to check the execution role permissions policy for your environment, and "
    "that each of the VPC networking components required by the environment are configured "
    "to allow traffic. Troubleshooting: "
    "https://docs.aws.amazon.com/mwaa/latest/userguide/troubleshooting.html"
)


def execution_role_cannot(err: ClientError, action: str) -> Outcome:
    """The execution role was refused `action`: MWAA's message, then what was refused."""
    if is_transient(err):
        return RetryLater(f"{action}: {err}")
    detail = err.response.get("Error", {}).get("Message") or error_code(err)
    return Failed(
        "INCORRECT_CONFIGURATION",
        f"{EXECUTION_ROLE_MESSAGE} ({action}: {error_code(err)}: {detail})",
    )


def misconfigured(err: ClientError, action: str, message: str) -> Outcome:
    """A transient error during `action` retries; any other means the user's prerequisites
    are wrong, reported as MWAA does with `message` and the AWS error code."""
    if is_transient(err):
        return RetryLater(f"{action}: {err}")
    return Failed("INCORRECT_CONFIGURATION", f"{message} ({error_code(err)}).")
