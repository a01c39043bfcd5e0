"""Domain errors, named exactly after the MWAA error shapes they become on the wire.

The control plane maps each class to its HTTP status in one table; nothing here knows HTTP.
"""

from __future__ import annotations


class AirdockError(Exception):
    """Base of every error a caller can cause or see. `code` is the AWS error shape name."""

    code = "InternalServerException"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationException(AirdockError):
    code = "ValidationException"


class ResourceNotFoundException(AirdockError):
    code = "ResourceNotFoundException"


class AccessDeniedException(AirdockError):
    code = "AccessDeniedException"


class InternalServerException(AirdockError):
    code = "InternalServerException"


class ServiceUnavailableException(AirdockError):
    code = "ServiceUnavailableException"


class ConcurrentModification(Exception):
    """An optimistic-concurrency write lost the race; callers retry or report."""


def not_found(name: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"Environment {name} not found.")


class RestApiServerException(AirdockError):
    """Airflow's REST API answered 5xx (or could not be reached); MWAA sends HTTP 400."""

    code = "RestApiServerException"

    def __init__(self, message: str, status_code: int, response: dict) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = response


class RestApiClientException(RestApiServerException):
    """Airflow's REST API answered 4xx."""

    code = "RestApiClientException"
