"""Turn botocore failures into step outcomes: transient ones retry, the rest fail clearly."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from environments.provisioning.step import Failed, Outcome, RetryLater

_THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "SlowDown",
        "RequestThrottled",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "OperationAbortedException",
    }
)


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def is_transient(err: Exception) -> bool:
    if isinstance(err, EndpointConnectionError | ConnectionClosedError | ReadTimeoutError):
        return True
    if isinstance(err, ClientError):
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(err) in _THROTTLING or status >= 500 or status == 429
    return isinstance(err, BotoCoreError)


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
