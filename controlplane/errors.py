"""One table from domain errors to rest-json error responses, as botocore parses them."""

from __future__ import annotations

import json
import uuid

from starlette.responses import Response

from environments.errors import AirdockError, RestApiServerException

STATUS_BY_CODE = {
    "ValidationException": 400,
    "SerializationException": 400,
    "ResourceNotFoundException": 404,
    "UnknownOperationException": 404,
    "AccessDeniedException": 403,
    "MissingAuthenticationTokenException": 403,
    "IncompleteSignatureException": 403,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
    "ExpiredTokenException": 403,
    "RequestEntityTooLargeException": 413,
    "RestApiClientException": 400,
    "RestApiServerException": 400,  # MWAA answers 400 even when Airflow answered 5xx
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}


def request_id() -> str:
    return str(uuid.uuid4())


def error_response(code: str, message: str, *, extra: dict | None = None) -> Response:
    # AccessDeniedException's modeled member is `Message`; every other shape uses `message`.
    body: dict = {"Message" if code == "AccessDeniedException" else "message": message}
    if extra:
        body.update(extra)
    return Response(
        content=json.dumps(body),
        status_code=STATUS_BY_CODE.get(code, 400),
        media_type="application/json",
        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": request_id()},
    )


def from_domain(err: AirdockError) -> Response:
    extra = None
    if isinstance(err, RestApiServerException):
        extra = {"RestApiStatusCode": err.status_code, "RestApiResponse": err.response}
    return error_response(err.code, err.message, extra=extra)
