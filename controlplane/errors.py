"""Errors as rest-json responses, and the errors AWS answers before MWAA sees a request.

The domain errors (environments.errors) carry their status from the mwaa service model. The
classes below are outside that model: AWS's front door answers them for every rest-json
service (request framing, unknown routes, SigV4), so their statuses are stated here.
"""

from __future__ import annotations

import json
import uuid

from starlette.responses import Response

from environments.errors import AirdockError

# --- outside the mwaa model: request framing ----------------------------------------------


class SerializationException(AirdockError, status=400):
    """The body is not a JSON object."""


class UnknownOperationException(AirdockError, status=404):
    """No operation matches the method and path."""


class RequestEntityTooLargeException(AirdockError, status=413):
    pass


class RequestHeaderFieldsTooLargeException(AirdockError, status=431):
    """The request line and headers exceed the limit (controlplane.http_limits)."""


class RequestTimeoutException(AirdockError, status=408):
    """The request's head or body did not arrive in time (controlplane.http_limits)."""


# --- outside the mwaa model: SigV4 authentication -----------------------------------------


class MissingAuthenticationTokenException(AirdockError, status=403):
    pass


class IncompleteSignatureException(AirdockError, status=403):
    pass


class UnrecognizedClientException(AirdockError, status=403):
    pass


class InvalidSignatureException(AirdockError, status=403):
    pass


class ExpiredTokenException(AirdockError, status=403):
    pass


# The error for each code `iam.SigV4Error` reports.
SIGV4_ERRORS: dict[str, type[AirdockError]] = {
    cls.__name__: cls
    for cls in (
        MissingAuthenticationTokenException,
        IncompleteSignatureException,
        UnrecognizedClientException,
        InvalidSignatureException,
        ExpiredTokenException,
    )
}


def request_id() -> str:
    return str(uuid.uuid4())


def error_response(err: AirdockError) -> Response:
    return Response(
        content=json.dumps(err.members()),
        status_code=err.status,
        media_type="application/json",
        headers={"x-amzn-ErrorType": err.code, "x-amzn-RequestId": request_id()},
    )
