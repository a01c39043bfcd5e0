"""Shared helpers for the iam tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from iam.evaluate import Decision, evaluate
from iam.policy import Policy, parse_policy
from iam.request import Caller, Request

ACCOUNT = "111122223333"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/deployer"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/bob"
ENV_ARN = f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/team-a-env"
# The reference vectors (one JSON array of cases, see iam.cases), kept with the tests.
CASES_PATH = Path(__file__).resolve().parent / "data" / "iam-cases.json"

USER = Caller(arn=ALICE, type="User", account=ACCOUNT, tags={"team": "team-a"})
ROLE_SESSION = Caller(
    arn=SESSION, type="AssumedRole", account=ACCOUNT, tags={"team": "team-a"}, role_arn=ROLE
)


def policy(
    *statements: dict[str, Any], version: str | None = "2012-10-17", kind: str = "identity"
) -> Policy:
    doc: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        doc["Version"] = version
    return parse_policy(doc, kind=kind)  # type: ignore[arg-type]


def allow(action: str = "*", resource: str | list[str] = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: str = "*", resource: str | list[str] = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def request(
    action: str = "airflow:GetEnvironment",
    resource: str = ENV_ARN,
    context: dict[str, Any] | None = None,
    caller: Caller = USER,
) -> Request:
    return Request(action, resource, caller, context or {})


def decide(
    *statements: dict[str, Any],
    context: dict[str, Any] | None = None,
    action: str = "airflow:GetEnvironment",
    resource: str = ENV_ARN,
    version: str | None = "2012-10-17",
) -> Decision:
    """Decision for one identity policy made of ``statements``."""
    return evaluate(
        request(action, resource, context), identity=[policy(*statements, version=version)]
    )


def when(condition: dict[str, Any], context: dict[str, Any] | None = None) -> bool:
    """Does an Allow guarded by ``condition`` grant, under ``context``?"""
    return decide(allow(Condition=condition), context=context) is Decision.ALLOW


@pytest.fixture(scope="session")
def cases_path() -> Path:
    return CASES_PATH
