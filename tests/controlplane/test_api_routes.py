"""Every MWAA route in-process: what it asks the Gatekeeper, where it asks, and that a request
that is not authenticated or not authorized never reaches the service.

The Gatekeeper here records the Intents it is asked about (the real one is tested in
test_iam_gate.py and the e2e IAM tests); the service and its store are real.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import event

from controlplane.app import create_app
from controlplane.errors import MissingAuthenticationTokenException
from controlplane.hot_reads import HotReads
from controlplane.security import Intent
from environments.errors import AccessDeniedException
from environments.naming import Placement
from environments.service import EnvironmentService, Requester
from environments.store import Store
from tests.conftest import create_params

PLACE = Placement(account_id="123456789012", region="us-east-1")
E1 = PLACE.environment_arn("e1")
ADMIN = Requester(arn="arn:aws:iam::123456789012:user/airdock-admin", iam_identity="user/x")

# method, path, JSON body, the action asked about, its resource, asked on the event loop
OPERATIONS = [
    ("GET", "/environments/e1", None, "airflow:GetEnvironment", E1, True),
    ("GET", "/environments", None, "airflow:ListEnvironments", "*", True),
    ("GET", f"/tags/{quote(E1, safe='')}", None, "airflow:ListTagsForResource", E1, True),
    (
        "PUT",
        "/environments/e2",
        create_params(Tags={"team": "b"}),
        "airflow:CreateEnvironment",
        PLACE.environment_arn("e2"),
        False,
    ),
    ("PATCH", "/environments/e1", {"MaxWorkers": 3}, "airflow:UpdateEnvironment", E1, False),
    ("POST", f"/tags/{quote(E1, safe='')}", {"Tags": {"x": "y"}}, "airflow:TagResource", E1, False),
    ("DELETE", f"/tags/{quote(E1, safe='')}?tagKeys=x", None, "airflow:UntagResource", E1, False),
    ("POST", "/clitoken/e1", None, "airflow:CreateCliToken", E1, False),
    ("POST", "/webtoken/e1", None, "airflow:CreateWebLoginToken", "e1", False),
    (
        "POST",
        "/restapi/e1",
        {"Path": "/dags", "Method": "GET"},
        "airflow:InvokeRestApi",
        "e1",
        False,
    ),
    ("POST", "/metrics/environments/e1", {"MetricData": []}, "airflow:PublishMetrics", E1, False),
    ("DELETE", "/environments/e1", None, "airflow:DeleteEnvironment", E1, False),
]


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class RecordingGatekeeper:
    def __init__(self) -> None:
        self.signed = True
        self.allowed = True
        self.reads_tags = False  # as the real gate does when a policy reads aws:ResourceTag
        self.asked: list[tuple[Intent, bool]] = []

    def authenticate(self, request, body: bytes) -> Requester:
        if not self.signed:
            raise MissingAuthenticationTokenException("Missing Authentication Token")
        return ADMIN

    def authorize(self, request, requester: Requester, intent: Intent) -> None:
        self.asked.append((intent, _on_event_loop()))
        if self.reads_tags and intent.resource_tags is not None:
            intent.resource_tags()
        if not self.allowed:
            raise AccessDeniedException(f"not allowed: {intent.action}")

    def airflow_role(self, request, requester: Requester, env_name: str, action: str) -> str:
        self.authorize(request, requester, Intent(action, env_name))
        return "Op"


def make_world(tmp_path, served=lambda app: app) -> SimpleNamespace:
    db = Store(f"sqlite:///{tmp_path / 'store.db'}")
    db.create_schema()
    service = EnvironmentService(db, PLACE)
    service.create("e1", create_params(Tags={"team": "a"}))
    gate = RecordingGatekeeper()
    app = create_app(SimpleNamespace(service=service, gatekeeper=gate))  # type: ignore[arg-type]
    return SimpleNamespace(client=Client(served(app)), gate=gate, service=service, db=db)


# Every test runs on the FastAPI app alone and as the API workers serve it (HotReads in front).
@pytest.fixture(params=["routes", "hot-reads"])
def world(request, tmp_path):
    made = make_world(tmp_path, HotReads if request.param == "hot-reads" else lambda app: app)
    yield made
    made.db.dispose()


class Client:
    """Requests straight into the ASGI app, on an event loop of their own."""

    def __init__(self, app) -> None:
        self._app = app

    def request(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self._app)
            async with httpx.AsyncClient(transport=transport, base_url="http://mwaa") as client:
                return await client.request(method, path, json=body)

        return asyncio.run(send())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)


def _snapshot(world) -> tuple:
    row = world.db.read_environment("e1")
    return row.row_version, row.tags, world.db.read_environment("e2")


@pytest.mark.parametrize(("method", "path", "body", "action", "resource", "inline"), OPERATIONS)
def test_asks_its_intent_where_it_should(world, method, path, body, action, resource, inline):
    response = world.client.request(method, path, body)
    assert response.status_code != 403, response.text
    [(intent, on_loop)] = [(i, loop) for i, loop in world.gate.asked if i.action == action]
    assert intent.resource == resource
    assert on_loop is inline, "reads are authorized on the event loop, writes in the pool"


@pytest.mark.parametrize(("method", "path", "body", "action", "resource", "inline"), OPERATIONS)
def test_unauthenticated_calls_reach_nothing(world, method, path, body, action, resource, inline):
    world.gate.signed = False
    before = _snapshot(world)
    response = world.client.request(method, path, body)
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert world.gate.asked == [] and _snapshot(world) == before


@pytest.mark.parametrize(("method", "path", "body", "action", "resource", "inline"), OPERATIONS)
def test_unauthorized_calls_change_nothing(world, method, path, body, action, resource, inline):
    world.gate.allowed = False
    before = _snapshot(world)
    response = world.client.request(method, path, body)
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert response.json() == {"Message": f"not allowed: {action}"}
    assert _snapshot(world) == before


def test_intents_carry_the_tags_of_their_target_by_name_or_by_arn(world):
    world.client.get("/environments/e1")
    world.client.get(f"/tags/{quote(E1, safe='')}")
    foreign = "arn:aws:airflow:eu-west-1:999999999999:environment/e1"
    world.client.get(f"/tags/{quote(foreign, safe='')}")
    world.client.get(f"/tags/{quote('not-an-arn', safe='')}")
    fetched = [intent.resource_tags() for intent, _ in world.gate.asked]
    assert fetched == [{"team": "a"}, {"team": "a"}, None, None]


def test_create_states_its_tags_and_the_role_it_passes(world):
    params = create_params(Tags={"team": "b"})
    world.client.request("PUT", "/environments/e3", params)
    [(intent, _)] = world.gate.asked
    assert intent.context["aws:RequestTag/team"] == "b" and intent.context["aws:TagKeys"] == [
        "team"
    ]
    assert [(extra.action, extra.resource) for extra in intent.also] == [
        ("iam:PassRole", params["ExecutionRoleArn"]),
        ("airflow:TagResource", PLACE.environment_arn("e3")),
    ]


@pytest.mark.parametrize("path", ["/environments/e1", f"/tags/{quote(E1, safe='')}"])
def test_a_read_under_a_tag_policy_reads_the_row_once(world, path):
    world.gate.reads_tags = True
    statements: list[str] = []
    engine = world.db.engine
    listener = lambda conn, cursor, sql, *rest: statements.append(sql)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        response = world.client.get(path)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert response.status_code == 200, response.text
    assert len([sql for sql in statements if "FROM environments" in sql]) == 1, statements
    body = response.json()
    tags = body["Environment"]["Tags"] if "Environment" in body else body["Tags"]
    assert tags == {"team": "a"}


# GET requests, whether HotReads takes them (else FastAPI does), and the gate's mood.
HOT_CASES = [
    ("/environments/e1", True, {}),
    ("/environments/e1?extra=ignored", True, {}),
    ("/environments/missing", True, {}),
    ("/environments/" + "x" * 80, True, {}),  # longer than a name may be
    ("/environments/bad%20name", True, {}),
    ("/environments/e1", True, {"signed": False}),
    ("/environments/e1", True, {"allowed": False}),
    ("/environments/e1/", False, {}),  # a trailing slash: no operation
    ("/environments/a%2Fb", False, {}),  # an encoded slash is still two segments
    ("/environments/", False, {}),
    ("/environments", True, {}),
    ("/environments?MaxResults=1", True, {}),
    ("/environments?MaxResults=abc", True, {}),
    ("/environments?MaxResults=0", True, {}),
    ("/environments?NextToken=garbage", True, {}),
    ("/environments", True, {"signed": False}),
    ("/environments", True, {"allowed": False}),
]


class CountingApp:
    """The FastAPI app, counting the requests that reach it."""

    def __init__(self, app) -> None:
        self.app, self.requests = app, 0

    def __getattr__(self, name: str):
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send) -> None:
        self.requests += 1
        await self.app(scope, receive, send)


def both_answers(tmp_path, method: str, path: str, **gate: bool) -> tuple[list[tuple], bool]:
    """(status, headers but the request id, body) from the FastAPI app alone and from HotReads
    in front of that same app, in that order; and whether HotReads answered by itself."""
    world = make_world(tmp_path)
    for key, value in gate.items():
        setattr(world.gate, key, value)
    app = CountingApp(world.client._app)
    answers = []
    for client in (Client(app.app), Client(HotReads(app))):
        response = client.request(method, path)
        assert response.headers["x-amzn-requestid"]
        headers = {k: v for k, v in response.headers.items() if k != "x-amzn-requestid"}
        answers.append((response.status_code, headers, response.content))
    world.db.dispose()
    return answers, app.requests == 0


@pytest.mark.parametrize(("path", "taken", "gate"), HOT_CASES)
def test_hot_reads_answer_exactly_as_the_route_does(tmp_path, path, taken, gate):
    (routed, hot), answered_alone = both_answers(tmp_path, "GET", path, **gate)
    assert answered_alone is taken
    assert hot == routed


def test_head_is_left_to_fastapi(tmp_path):
    (routed, hot), answered_alone = both_answers(tmp_path, "HEAD", "/environments/e1")
    assert not answered_alone and hot == routed
