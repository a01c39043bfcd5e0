"""Failures of `airdock infra` that the user can act on."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError


class InfraError(Exception):
    """A failure the user can act on; the message says what happened and what to do."""


def explain(err: ClientError | BotoCoreError) -> str:
    if isinstance(err, NoCredentialsError):
        return (
            f"{err}: configure AWS credentials (environment, `aws configure`, AWS_PROFILE) "
            "or target a server with --data-dir"
        )
    return str(err)
