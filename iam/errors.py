"""Exceptions raised by the iam library.

Each error carries a message a user can act on: policy and directory errors name the place in
the document where the problem is, SigV4 errors carry the AWS error code a client expects.
None of them ever includes secret material.
"""

from __future__ import annotations


class PolicyError(ValueError):
    """A policy document is malformed. The message starts with the location, e.g.
    ``Statement[2].Condition.StringEquals: ...``."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}" if where else problem)


class DirectoryError(ValueError):
    """The principal directory configuration is invalid. The message names the path, e.g.
    ``users.alice.policies[1]: unknown policy 'X'``."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}" if where else problem)


class SigV4Error(Exception):
    """A request failed SigV4 authentication.

    ``code`` is the rest-json error code (sent as ``x-amzn-ErrorType``); ``message`` is safe to
    return to the client. ``detail`` may hold the canonical request and string to sign, which
    help debugging on the server side and contain no secret.
    """

    MISSING = "MissingAuthenticationTokenException"
    INCOMPLETE = "IncompleteSignatureException"
    UNRECOGNIZED = "UnrecognizedClientException"
    EXPIRED = "ExpiredTokenException"
    INVALID = "InvalidSignatureException"

    def __init__(self, code: str, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail
        self.status = 403

    def __repr__(self) -> str:
        return f"SigV4Error({self.code!r}, {self.message!r})"


def clip(text: str, limit: int = 80) -> str:
    """Shorten user input quoted in a message, so a huge value cannot flood logs or replies."""
    return text if len(text) <= limit else text[:limit] + "..."
