"""A property-based fuzz of all twelve MWAA operations against a live server.

Requests are drawn from botocore's model of each operation (tests/e2e/fuzz_strategies.py):
valid and invalid members, wrong types, raw garbage bodies, unsigned calls, and valid writes
on a small pool of names so that environments really come and go. No answer may be a 5xx,
every refusal is AWS-shaped, and afterwards the store is consistent: what list says exists,
get returns, with the tags ListTagsForResource returns, and every stored row reads back.

5,000 cases by default, a few minutes on two busy cores; AIRDOCK_FUZZ_CASES sets another
number. Marked `slow` so a quick local run can leave it out (`-m 'not slow'`); the full suite
(`./scripts/test`, CI) runs it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from environments import store
from environments.lifecycle import TRANSITIONAL
from tests.conftest import LiveServer, make_prerequisites, start_server
from tests.e2e.fuzz_strategies import Request, model, requests, valid_writes
from tests.e2e.iam_support import SignedAuth
from tests.waiting import wait_until

CASES = int(os.environ.get("AIRDOCK_FUZZ_CASES", "5000"))
NAMES = [f"fuzz-{letter}" for letter in "abcdef"]
ACCOUNT, REGION = "123456789012", "us-east-1"


def arn_of(name: str) -> str:
    return f"arn:aws:airflow:{REGION}:{ACCOUNT}:environment/{name}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("fuzz") / "data")
    yield live
    live.stop()


def test_all_twelve_operations_are_fuzzed():
    assert len(model().operation_names) == 12


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_fuzz_finds_no_5xx_and_the_store_stays_consistent(server):
    prerequisites = make_prerequisites(server, "fuzz")
    seen: Counter[tuple[str, int]] = Counter()
    signed = httpx.Client(base_url=server.url, timeout=30, auth=SignedAuth(server.admin_key()))
    unsigned = httpx.Client(base_url=server.url, timeout=30)
    cases = st.one_of(
        requests(NAMES, arn_of),
        requests(NAMES, arn_of),
        valid_writes(NAMES, arn_of, prerequisites),
    )

    @settings(
        max_examples=CASES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(cases)
    def one_request(request: Request) -> None:
        client = signed if request.signed else unsigned
        response = client.request(request.method, request.target, content=request.body)
        seen[(request.operation, response.status_code)] += 1
        assert response.status_code < 500, (request, response.status_code, response.text)
        if response.status_code >= 400:
            assert response.headers.get("x-amzn-ErrorType"), (request, response.text)
            members = response.json()
            assert members.get("message") or members.get("Message"), (request, response.text)
        else:
            assert isinstance(response.json(), dict)

    with signed, unsigned:
        one_request()
    operations = {operation for operation, _ in seen}
    assert operations == set(model().operation_names), f"never drawn: {operations}"
    assert any(status == 200 for (operation, status) in seen if operation == "CreateEnvironment")
    _assert_consistent(server)


def _assert_consistent(server: LiveServer) -> None:
    mwaa = server.mwaa()

    def settled() -> list[dict] | None:
        names = [
            n
            for page in mwaa.get_paginator("list_environments").paginate()
            for n in page["Environments"]
        ]
        found = [mwaa.get_environment(Name=name)["Environment"] for name in names]
        return None if any(env["Status"] in TRANSITIONAL for env in found) else found or [{}]

    environments = [
        env for env in wait_until(settled, timeout=120, message="the reconciler to settle") if env
    ]
    listed = {env["Name"] for env in environments}
    assert listed <= set(NAMES), listed
    for env in environments:
        assert env["Arn"] == arn_of(env["Name"])
        tags = mwaa.list_tags_for_resource(ResourceArn=env["Arn"])["Tags"]
        assert env.get("Tags", {}) == tags
    for name in set(NAMES) - listed:
        with pytest.raises(mwaa.exceptions.ResourceNotFoundException):
            mwaa.get_environment(Name=name)
    # Underneath: every row the store holds is one list shows, and reads back whole.
    db = store.Store(f"sqlite:///{server.data_dir / 'airdock.db'}")
    try:
        with db.transaction() as session:
            rows = store.list_names(session, None, 1000)
        assert set(rows) == listed
        for name in rows:
            row = db.read_environment(name)
            assert row is not None and isinstance(row.spec, dict) and row.spec
            json.dumps(row.spec)
    finally:
        db.dispose()
