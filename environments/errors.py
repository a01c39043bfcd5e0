"""Domain errors: one class per MWAA error shape, named exactly after it (as moto names its own).

Every class carries the HTTP status that botocore's `mwaa` service model gives its shape, read
from the model when the class is defined. There is no default: a class named after a shape the
model does not list fails at import unless it states its status itself.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from environments.plumbing import botocore_data


@functools.cache
def _modeled_statuses() -> dict[str, int]:
    model = botocore_data.new_session().get_service_model("mwaa")
    return {shape.name: shape.metadata["error"]["httpStatusCode"] for shape in model.error_shapes}


def modeled_error_shapes() -> frozenset[str]:
    """Names of every error shape of the mwaa service model."""
    return frozenset(_modeled_statuses())


def modeled_status(shape: str) -> int:
    """The HTTP status the mwaa service model gives the error shape `shape`."""
    try:
        return _modeled_statuses()[shape]
    except KeyError:
        raise LookupError(
            f"the mwaa service model has no error shape {shape}: state its status explicitly"
        ) from None


class AirdockError(Exception):
    """Base of every error a caller can see. The class name is the AWS error shape's name.

    A subclass is a shape unless it says `shape=False`; its `status` comes from the mwaa model
    unless it gives `status=` (only for errors the model does not describe).
    """

    status: ClassVar[int]

    def __init_subclass__(
        cls, *, status: int | None = None, shape: bool = True, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if shape:
            cls.status = modeled_status(cls.__name__) if status is None else status

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def code(self) -> str:
        return type(self).__name__

    def members(self) -> dict[str, Any]:
        """The shape's members, as an error response body carries them."""
        return {"message": self.message}


class ValidationException(AirdockError):
    pass


class ResourceNotFoundException(AirdockError):
    pass


class AccessDeniedException(AirdockError):
    def members(self) -> dict[str, Any]:
        # The only shape whose modeled member is `Message`; every other one has `message`.
        return {"Message": self.message}


class InternalServerException(AirdockError):
    """What the API answers for a failure of its own (the catch-all handler)."""


class ServiceUnavailableException(AirdockError):
    """The store cannot be reached; nothing changed and the call can be retried."""


class _AirflowAnswered(AirdockError, shape=False):
    """InvokeRestApi's errors: what the environment's Airflow REST API answered."""

    def __init__(self, message: str, status_code: int, response: dict) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = response

    def members(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "RestApiStatusCode": self.status_code,
            "RestApiResponse": self.response,
        }


class RestApiServerException(_AirflowAnswered):
    """Airflow's REST API answered 5xx or could not be reached (MWAA still answers HTTP 400)."""


class RestApiClientException(_AirflowAnswered):
    """Airflow's REST API answered 4xx. Nothing raises it until InvokeRestApi reaches a running
    Airflow web server; the model lists it, so the class exists for that answer."""


class ConcurrentModification(Exception):
    """An optimistic-concurrency write lost the race; callers retry or report."""


def not_found(name: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"Environment {name} not found.")
