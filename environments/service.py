"""The environment service: what every MWAA operation does to the store.

Requests validate, record the desired spec with a new generation in one transaction, and
return; the reconciler does the slow work. Nothing here calls AWS or knows HTTP.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError

from environments import shapes, store
from environments import spec as specs
from environments.errors import (
    ConcurrentModification,
    RestApiServerException,
    ValidationException,
    not_found,
)
from environments.lifecycle import Event, Status, TransitionRefused, next_status
from environments.naming import Placement
from environments.pagination import PageTokens
from environments.store import EnvironmentRow, Store, TokenRow
from environments.view import describe

# Runs on the row a write is about to change, with its current tags, and raises if the caller
# may not act on an environment with those tags. The write then succeeds only if the row is
# still the one checked (compare-and-set), so authorization and write are one atomic step.
TagGuard = Callable[[dict[str, str] | None], None]

TOKEN_TTL_SECONDS = 60.0
DEFAULT_MAX_ENVIRONMENTS = 500
MAX_TAGS = 50
# Statuses in which a web server exists to hand tokens for.
_SERVING = frozenset({Status.AVAILABLE, Status.UPDATING, Status.ROLLING_BACK, Status.UPDATE_FAILED})


class RestApi(Protocol):
    """Forwards a validated InvokeRestApi request to the environment's Airflow, as `identity`
    in the Airflow `role`, and answers as MWAA does (environments.airflow.access.rest)."""

    def invoke(
        self, environment: str, identity: str, role: str, params: dict[str, Any]
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Requester:
    """Who made a request, as tokens and LastUpdate report it."""

    arn: str
    iam_identity: str  # e.g. "user/alice" or "assumed-role/Admin/alice"
    # The authenticated principal as the policy engine knows it (opaque to this package).
    principal: object | None = None


@dataclass(frozen=True)
class RedeemedToken:
    kind: str  # "cli" or "web"
    env_name: str
    identity: str  # the ARN of who minted it
    airflow_role: str | None  # web tokens: the Airflow role IAM allowed
    expires_at: float


class EnvironmentService:
    def __init__(
        self,
        db: Store,
        placement: Placement,
        *,
        max_environments: int = DEFAULT_MAX_ENVIRONMENTS,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self.placement = placement
        self._max_environments = max_environments
        self._on_change = on_change or (lambda: None)
        self._pages = PageTokens(self._shared_key("pagination-key"))
        self._rest_api: RestApi | None = None

    def set_rest_api(self, rest_api: RestApi) -> None:
        """Where InvokeRestApi goes (without one, environments have no Airflow to call)."""
        self._rest_api = rest_api

    def _shared_key(self, name: str) -> bytes:
        for _ in range(3):
            try:
                with self._db.transaction() as session:
                    value = store.get_or_create_meta(session, name, lambda: secrets.token_hex(32))
                return bytes.fromhex(value)
            except IntegrityError:  # another replica created it first; read theirs
                continue
        raise RuntimeError(f"could not read or create the shared key {name!r}")

    def shared_secret(self, name: str) -> bytes:
        """A random key kept in the store under `name`, the same on every replica (e.g. the
        console's session key)."""
        return self._shared_key(name)

    def set_change_listener(self, listener: Callable[[], None]) -> None:
        self._on_change = listener

    # --- environments -----------------------------------------------------------------

    def create(self, name: str, params: dict[str, Any]) -> str:
        shapes.validate("CreateEnvironment", {**params, "Name": name})
        spec = specs.new_spec(params)
        tags = dict(params.get("Tags") or {})
        specs.check_tags(tags)
        now = time.time()
        row = EnvironmentRow(
            name=name,
            arn=self.placement.environment_arn(name),
            env_id=uuid.uuid4().hex,
            status=Status.CREATING.value,
            spec=spec,
            applied_spec=None,
            tags=tags,
            created_at=now,
            last_update={"Status": "PENDING", "CreatedAt": now, "Source": "Customer"},
            resources={},
            generation=1,
            observed_generation=0,
            progress={},
            attempts=0,
            next_attempt_at=0.0,
            lease_owner=None,
            lease_expires=0.0,
            row_version=1,
        )
        try:
            with self._db.transaction() as session:
                if store.get_environment(session, name) is not None:
                    raise _already_exists(name)
                if store.count_environments(session) >= self._max_environments:
                    raise ValidationException(
                        f"You have reached the maximum of {self._max_environments} environments "
                        "in this account and region. Delete an environment and try again."
                    )
                session.add(row)
        except IntegrityError:  # a concurrent create of the same name won
            raise _already_exists(name) from None
        self._on_change()
        return row.arn

    def get(self, name: str, row: EnvironmentRow | None = None) -> dict[str, Any]:
        """MWAA's Environment for `name`; `row` is one the caller read for it just before
        (authorization reads it for tag conditions), sparing a second read."""
        shapes.validate("GetEnvironment", {"Name": name})
        return describe(self._known_row(name, row), self.placement)

    def update(self, name: str, params: dict[str, Any], guard: TagGuard | None = None) -> str:
        shapes.validate("UpdateEnvironment", {**params, "Name": name})

        def changes(row: EnvironmentRow) -> dict[str, Any]:
            last_update: dict[str, Any] = {
                "Status": "PENDING",
                "CreatedAt": time.time(),
                "Source": "Customer",
            }
            if "WorkerReplacementStrategy" in params:
                last_update["WorkerReplacementStrategy"] = params["WorkerReplacementStrategy"]
            return {"spec": specs.updated_spec(row.spec, params), "last_update": last_update}

        return self._request_transition(name, Event.UPDATE_REQUESTED, changes, guard)

    def delete(self, name: str, guard: TagGuard | None = None) -> None:
        shapes.validate("DeleteEnvironment", {"Name": name})
        self._request_transition(name, Event.DELETE_REQUESTED, lambda row: {}, guard)

    def _request_transition(
        self,
        name: str,
        event: Event,
        changes: Callable[[EnvironmentRow], dict[str, Any]],
        guard: TagGuard | None = None,
    ) -> str:
        """Move an environment to the status `event` leads to, with a new generation for the
        reconciler. One retry covers the race with a concurrent writer: the re-read then sees
        the winner's status and refuses, as MWAA does for an environment already UPDATING."""
        for attempt in range(2):
            row = self._row(name)
            if guard is not None:
                guard(dict(row.tags))  # the write below succeeds only if the row is unchanged
            status = self._transition(row, event)
            values = changes(row)
            try:
                with self._db.transaction() as session:
                    store.compare_and_set(
                        session,
                        name,
                        row.row_version,
                        status=status.value,
                        **store.next_generation(row),
                        **values,
                    )
                break
            except ConcurrentModification:
                if attempt == 1:
                    raise ValidationException(
                        f"Environment {name} was changed by another request; try again."
                    ) from None
        self._on_change()
        return row.arn

    def list(self, max_results: int | None, next_token: str | None) -> tuple[list[str], str | None]:
        params: dict[str, Any] = {}
        if max_results is not None:
            params["MaxResults"] = max_results
        if next_token is not None:
            params["NextToken"] = next_token
        shapes.validate("ListEnvironments", params)
        limit = max_results or 25
        after = self._pages.read(next_token) if next_token else None
        names = self._db.read_names(after, limit + 1)
        more = len(names) > limit
        names = names[:limit]
        return names, (self._pages.issue(names[-1]) if more else None)

    # --- tags -------------------------------------------------------------------------

    def list_tags(self, arn: str, row: EnvironmentRow | None = None) -> dict[str, str]:
        shapes.validate("ListTagsForResource", {"ResourceArn": arn})
        return dict(self._known_row(self.placement.name_from_arn(arn), row).tags)

    def tag(self, arn: str, params: dict[str, Any], guard: TagGuard | None = None) -> None:
        shapes.validate("TagResource", {**params, "ResourceArn": arn})
        tags: dict[str, str] = params["Tags"]
        specs.check_tags(tags)
        name = self.placement.name_from_arn(arn)
        self._change_tags(name, lambda current: {**current, **tags}, guard)

    def untag(self, arn: str, keys: list[str], guard: TagGuard | None = None) -> None:
        shapes.validate("UntagResource", {"ResourceArn": arn, "tagKeys": keys})
        name = self.placement.name_from_arn(arn)
        drop = set(keys)
        self._change_tags(
            name, lambda current: {k: v for k, v in current.items() if k not in drop}, guard
        )

    def _change_tags(
        self,
        name: str,
        change: Callable[[dict[str, str]], dict[str, str]],
        guard: TagGuard | None = None,
    ) -> None:
        for _ in range(5):
            row = self._row(name)
            if guard is not None:
                guard(dict(row.tags))  # the write below succeeds only if the row is unchanged
            tags = change(dict(row.tags))
            if len(tags) > MAX_TAGS:
                raise ValidationException(
                    f"Tags: an environment can have at most {MAX_TAGS} tags; "
                    f"this request would leave {len(tags)}."
                )
            try:
                with self._db.transaction() as session:
                    store.compare_and_set(session, name, row.row_version, tags=tags)
                return
            except ConcurrentModification:
                continue  # tags merge safely with the other writer's change; re-read and redo
        raise ValidationException(f"Environment {name} is busy; try again.")

    def snapshot(self, name: str) -> EnvironmentRow:
        """The stored row as it is now (status, reconciler progress, resources), for views
        such as progress and the console; ResourceNotFoundException if there is none."""
        return self._row(name)

    def resource_tags(self, name: str) -> dict[str, str] | None:
        """Tags of an existing environment (for authorization context), None if absent."""
        row = self.find(name)
        return dict(row.tags) if row is not None else None

    def find(self, name: str) -> EnvironmentRow | None:
        """A snapshot of the environment's row, None if there is none."""
        return self._db.read_environment(name)

    # --- tokens and the data plane ----------------------------------------------------

    def create_cli_token(self, name: str, requester: Requester) -> dict[str, str]:
        shapes.validate("CreateCliToken", {"Name": name})
        row = self._serving_row(name)
        token = self._mint(row, "cli", requester, airflow_role=None)
        return {"CliToken": token, "WebServerHostname": self._hostname(row)}

    def create_web_login_token(
        self, name: str, requester: Requester, airflow_role: str
    ) -> dict[str, str]:
        shapes.validate("CreateWebLoginToken", {"Name": name})
        row = self._serving_row(name)
        token = self._mint(row, "web", requester, airflow_role=airflow_role)
        return {
            "WebToken": token,
            "WebServerHostname": self._hostname(row),
            "IamIdentity": requester.iam_identity,
            "AirflowIdentity": requester.iam_identity[:64],
        }

    def redeem_token(
        self, token: str, kind: str, env_name: str, *, single_use: bool
    ) -> RedeemedToken | None:
        """What `token` grants if it is a live `kind` token for `env_name`, else None
        (unknown, forged, expired, used up, or minted for another environment). A single-use
        token is gone once presented, whatever the outcome."""
        token_hash = hashlib.sha256(token.encode()).hexdigest()
        with self._db.transaction() as session:
            row = (store.take_token if single_use else store.get_token)(session, token_hash)
            found = (
                RedeemedToken(
                    row.kind, row.env_name, row.identity, row.airflow_role, row.expires_at
                )
                if row is not None
                else None
            )
        if found is None or found.kind != kind or found.env_name != env_name:
            return None
        return found if found.expires_at > time.time() else None

    def invoke_rest_api(
        self, name: str, params: dict[str, Any], requester: Requester, airflow_role: str
    ) -> dict[str, Any]:
        shapes.validate("InvokeRestApi", {**params, "Name": name})
        row = self._serving_row(name)
        if self._rest_api is not None:
            return self._rest_api.invoke(row.name, requester.iam_identity, airflow_role, params)
        # No Airflow runs for environments here (--no-airflow); answer as MWAA does when
        # Airflow's API is unavailable: a RestApiServerException carrying a 503.
        raise RestApiServerException(
            f"The Apache Airflow REST API of environment {row.name} is not reachable.",
            503,
            {
                "title": "Service Unavailable",
                "status": 503,
                "detail": f"Environment {row.name} has no running Apache Airflow web server.",
            },
        )

    def publish_metrics(self, name: str, params: dict[str, Any]) -> None:
        shapes.validate("PublishMetrics", {**params, "EnvironmentName": name})
        self._row(name)
        raise ValidationException(
            "PublishMetrics is deprecated and no longer available; "
            "environments publish their metrics to CloudWatch themselves."
        )

    # --- helpers ----------------------------------------------------------------------

    def _row(self, name: str) -> EnvironmentRow:
        row = self._db.read_environment(name)
        if row is None:
            raise not_found(name)
        return row

    def _known_row(self, name: str, row: EnvironmentRow | None) -> EnvironmentRow:
        return row if row is not None and row.name == name else self._row(name)

    def _serving_row(self, name: str) -> EnvironmentRow:
        row = self._row(name)
        if Status(row.status) not in _SERVING:
            raise ValidationException(
                f"Environment {name} is not available (status {row.status}); "
                "tokens and REST API calls need a running web server."
            )
        return row

    def _hostname(self, row: EnvironmentRow) -> str:
        endpoints = row.resources.get("endpoints") or {}
        return endpoints.get("webserver_hostname") or self.placement.webserver_hostname(row.env_id)

    def _mint(
        self, row: EnvironmentRow, kind: str, requester: Requester, airflow_role: str | None
    ) -> str:
        token = secrets.token_urlsafe(48)
        with self._db.transaction() as session:
            store.add_token(
                session,
                TokenRow(
                    token_hash=hashlib.sha256(token.encode()).hexdigest(),
                    kind=kind,
                    env_name=row.name,
                    identity=requester.arn,
                    airflow_role=airflow_role,
                    expires_at=time.time() + TOKEN_TTL_SECONDS,
                ),
            )
        return token

    @staticmethod
    def _transition(row: EnvironmentRow, event: Event) -> Status:
        try:
            return next_status(Status(row.status), event)
        except TransitionRefused as refused:
            raise ValidationException(refused.message) from None


def _already_exists(name: str) -> ValidationException:
    return ValidationException(f"An environment named {name} already exists.")
