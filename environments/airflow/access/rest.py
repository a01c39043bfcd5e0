"""InvokeRestApi: an MWAA request forwarded to the environment's Airflow REST API.

`Path` is relative to the API's root (/api/v2 on 3.x, /api/v1 on 2.x), `QueryParameters` and
`Body` are JSON documents, and the call runs as the caller's IAM identity in the Airflow role
its policies allow (environments.airflow.access.bridge). Airflow's answer comes back as MWAA
gives it:

- 2xx: `{RestApiStatusCode, RestApiResponse}`;
- 4xx: RestApiClientException, 5xx: RestApiServerException, both HTTP 400 with Airflow's status
  and body (`RestApiStatusCode`, `RestApiResponse`);
- no answer within MWAA's 10 s: RestApiServerException carrying 504; Airflow not reachable:
  RestApiServerException carrying 503;
- an answer over MWAA's 6 MB payload limit: RestApiServerException carrying 502;
- a body that is not JSON (an HTML error page, plain text) comes back as a JSON string; an
  empty one as `{}`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import httpx

from environments.airflow.access.bridge import AirflowAccess, AirflowRefused, AirflowUnreachable
from environments.airflow.access.endpoint import NotRunning
from environments.errors import (
    RestApiClientException,
    RestApiServerException,
    ValidationException,
)

MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # MWAA's limit on a REST API response


class RestApiForwarder:
    """What EnvironmentService.invoke_rest_api hands a validated request to."""

    def __init__(self, access: AirflowAccess) -> None:
        self.access = access

    def invoke(
        self, environment: str, identity: str, role: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        path = api_path(params["Path"])
        query = query_parameters(params.get("QueryParameters"))
        body = params.get("Body")
        try:
            response, raw = self.access.request(
                environment,
                identity,
                role,
                params["Method"],
                path,
                params=query,
                json=body,
                max_bytes=MAX_RESPONSE_BYTES,
            )
        except NotRunning:
            raise _unavailable(environment, 503, "has no running Apache Airflow") from None
        except AirflowUnreachable as err:
            if err.timed_out:
                raise _unavailable(environment, 504, "did not answer within 10 seconds") from None
            raise _unavailable(environment, 503, "cannot be reached") from None
        except AirflowRefused:
            raise _unavailable(environment, 503, "refused Airdock's sign-in") from None
        status = response.status_code
        if len(raw) > MAX_RESPONSE_BYTES:
            raise RestApiServerException(
                "The Apache Airflow REST API response exceeds the 6 MB limit of InvokeRestApi.",
                502,
                {"title": "Response Too Large", "status": 502,
                 "detail": f"The response to {params['Method']} {path} is over 6 MB."},
            )  # fmt: skip
        document = response_document(response, raw)
        if 200 <= status < 300:
            return {"RestApiStatusCode": status, "RestApiResponse": document}
        if status >= 500:
            raise RestApiServerException(
                f"The Apache Airflow REST API answered {status}.", status, document
            )
        raise RestApiClientException(
            f"The Apache Airflow REST API answered {status}.", status, document
        )


def api_path(path: str) -> str:
    """`Path` checked to stay under the API's root: it may not climb out with `..`, nor carry
    a query or fragment of its own (QueryParameters is the query)."""
    if not path.startswith("/"):
        path = "/" + path
    if any(c in path for c in "?#") or any(ord(c) < 0x21 or ord(c) == 0x7F for c in path):
        raise ValidationException(
            "Path must be a path relative to the Apache Airflow REST API's root, without a "
            "query, fragment, spaces or control characters; pass the query as QueryParameters."
        )
    if any(unquote(part) in (".", "..") for part in path.split("/")):
        raise ValidationException("Path must not contain '.' or '..' segments.")
    return path


def query_parameters(query: Any) -> list[tuple[str, str]] | None:
    """QueryParameters as query pairs: a list repeats its key, booleans read true/false."""
    if query is None:
        return None
    if not isinstance(query, dict):
        raise ValidationException("QueryParameters must be a JSON object.")
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            if isinstance(item, dict | list):
                raise ValidationException(
                    f"QueryParameters.{key} must be a string, number, boolean or a list of them."
                )
            pairs.append((key, _text(item)))
    return pairs


def response_document(response: httpx.Response, raw: bytes) -> Any:
    """Airflow's body as a JSON document: parsed JSON, else the text itself, else {}."""
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(response.encoding or "utf-8", errors="replace")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _unavailable(environment: str, status: int, what: str) -> RestApiServerException:
    titles = {503: "Service Unavailable", 504: "Gateway Timeout"}
    return RestApiServerException(
        f"The Apache Airflow REST API of environment {environment} {what}.",
        status,
        {"title": titles[status], "status": status,
         "detail": f"The Apache Airflow web server of {environment} {what}."},
    )  # fmt: skip
