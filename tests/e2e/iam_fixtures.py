"""Fixtures for the IAM end-to-end tests (load with ``pytest_plugins``)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import make_prerequisites
from tests.e2e.iam_support import IamServer, example_config, execution_role, start_iam_server


@pytest.fixture(scope="session")
def iam_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IamServer]:
    """One server with the example teams, shared by the IAM tests that do not change it."""
    server = start_iam_server(tmp_path_factory.mktemp("airdock-iam"), example_config())
    yield server
    server.live.stop()


@pytest.fixture(scope="session")
def team_params(iam_server: IamServer):
    """CreateEnvironment arguments valid in the IAM server's AWS, with a passable role."""
    prerequisites = make_prerequisites(iam_server.live, "iam")
    bucket = prerequisites["SourceBucketArn"].rpartition(":")[2]
    prerequisites["ExecutionRoleArn"] = execution_role(
        iam_server.live, "MWAA-Execution-teams", bucket
    )

    def build(**overrides: object) -> dict:
        return {**json.loads(json.dumps(prerequisites)), **overrides}

    return build
