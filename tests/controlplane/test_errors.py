"""Every error a caller can see: one class per AWS error shape, with the model's HTTP status."""

from __future__ import annotations

import json

import botocore.session
import pytest

import controlplane.app
import controlplane.http_limits
import controlplane.iam_gate
import controlplane.wire
import iam
from controlplane.errors import SIGV4_ERRORS, error_response
from environments.errors import (
    AccessDeniedException,
    AirdockError,
    RestApiClientException,
    RestApiServerException,
)

# Not in the mwaa service model: AWS's front door answers them for every rest-json service.
OUTSIDE_THE_MODEL = {
    "SerializationException": 400,
    "UnknownOperationException": 404,
    "RequestEntityTooLargeException": 413,
    "RequestHeaderFieldsTooLargeException": 431,
    "RequestTimeoutException": 408,
    "MissingAuthenticationTokenException": 403,
    "IncompleteSignatureException": 403,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
    "ExpiredTokenException": 403,
}

# every raiser loaded
assert controlplane.app and controlplane.http_limits and controlplane.iam_gate and controlplane.wire


def _model_errors() -> dict[str, botocore.model.StructureShape]:
    model = botocore.session.get_session().get_service_model("mwaa")
    return {shape.name: shape for shape in model.error_shapes}


def _sample(cls: type[AirdockError]) -> AirdockError:
    if issubclass(cls, RestApiServerException | RestApiClientException):
        return cls("m", 502, {"title": "Bad Gateway"})
    return cls("m")


def _error_classes() -> dict[str, type[AirdockError]]:
    found: dict[str, type[AirdockError]] = {}
    pending = list(AirdockError.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "status" in vars(cls):  # a shape, not a shared base
            assert cls.__name__ not in found, f"two classes named {cls.__name__}"
            found[cls.__name__] = cls
    return found


def test_every_modeled_error_shape_has_a_class():
    assert set(_model_errors()) <= set(_error_classes())


@pytest.mark.parametrize("name", sorted(_error_classes()))
def test_each_class_has_the_status_of_its_shape(name):
    cls = _error_classes()[name]
    modeled = _model_errors().get(name)
    if modeled is not None:
        assert cls.status == modeled.metadata["error"]["httpStatusCode"]
    else:
        assert cls.status == OUTSIDE_THE_MODEL[name], f"{name} is neither modeled nor listed"
    response = error_response(_sample(cls))
    assert response.status_code == cls.status
    assert response.headers["x-amzn-ErrorType"] == name


@pytest.mark.parametrize("name", sorted(_model_errors()))
def test_bodies_carry_the_modeled_members(name):
    body = json.loads(error_response(_sample(_error_classes()[name])).body)
    assert set(_model_errors()[name].members) <= set(body)


def test_access_denied_says_message_with_a_capital_m():
    body = json.loads(error_response(AccessDeniedException("no")).body)
    assert body == {"Message": "no"}


def test_every_sigv4_failure_has_its_class():
    codes = {
        value
        for key, value in vars(iam.SigV4Error).items()
        if key.isupper() and isinstance(value, str)
    }
    assert codes == set(SIGV4_ERRORS)
    assert all(SIGV4_ERRORS[code].__name__ == code for code in codes)


def test_no_silent_default_for_an_unmodeled_shape():
    with pytest.raises(LookupError, match="NoSuchShapeException"):

        class NoSuchShapeException(AirdockError):
            pass
