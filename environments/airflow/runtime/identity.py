"""Who Airdock is inside an environment's Airflow: FAB users, their roles and their passwords.

MWAA authenticates every door (web login, CLI, REST API) with IAM and maps the caller to an
Airflow role of Flask-AppBuilder (FAB): Admin, Op, User or Viewer, or Public (no access). The
Airflow behind it uses FAB for its users and permissions: on 2.x FAB is the web server's own
auth, on 3.x the API server runs `FabAuthManager` (configured in `configuration.auth`).

Airdock keeps a FAB user per IAM identity and role, named after both, as MWAA shows the IAM
principal as the Airflow user. A user's role never changes: when a caller's policies change
what role it gets, its calls move to the user of that role. (One user whose role followed the
latest call would let a process that last saw an old role trust a role another process has
since raised.) Passwords are never
stored per user: each is an HMAC of the user name under the environment's `access_key` (one
random secret in the environment's 0600 secrets file, beside its Fernet key). Every process of
the control plane derives the same password, so two API workers never race to set different
ones, and a new secret (a restored environment) changes them all.

Two kinds of user:

- the *service user* (`airdock-service`, Admin), created at start by `ensure_service_user`,
  which runs `fab_users_child.py` with the environment's own Airflow (the password travels in
  the child's environment, readable by the environment's account alone, never on a command
  line);
- the *identity users*, one per IAM identity, created and updated through FAB's user REST API
  as the service user (`environments.airflow.access`), which is fast enough to do on a
  caller's first request.

User names are the IAM identity with `/` written as `~`, then the role
(`assumed-role~Admin~alice~Viewer`): IAM names never contain `~`, so the mapping cannot make
two identities one user, and the name stays usable in a URL path and in HTTP basic auth
(neither takes `/` or `:`). The user's first name is the IAM identity as MWAA reports it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from environments.airflow.runtime.migration import MIGRATE_TIMEOUT
from environments.airflow.runtime.plan import RuntimePlan
from environments.airflow.runtime.supervisor import Launcher
from environments.plumbing import processes as procs

# MWAA's Airflow roles, most capable first.
ROLES = ("Admin", "Op", "User", "Viewer", "Public")
SERVICE_USER = "airdock-service"
SECRET_NAME = "access_key"  # the key in the environment's secrets file
CHILD_SOURCE = Path(__file__).with_name("fab_users_child.py")
BOOTSTRAP_TIMEOUT = 300.0
MIGRATION_FAILED = 3  # fab_users_child's exit code when its `airflow db migrate` failed
EMAIL_DOMAIN = "users.airdock.invalid"


@dataclass(frozen=True)
class Login:
    """A FAB user's name and password (never logged: the repr hides the password)."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Login(username={self.username!r}, password=***)"


def username_for(identity: str, role: str) -> str:
    """The FAB user of an IAM identity in a role (`user/alice`, Viewer -> `user~alice~Viewer`)."""
    if not identity or "~" in identity or ":" in identity or not identity.isprintable():
        raise ValueError(f"not an IAM identity: {identity!r}")
    if role not in ROLES:
        raise ValueError(f"not an MWAA Airflow role: {role!r}")
    return f"{identity.replace('/', '~')}~{role}"


def password_for(access_key: str, username: str) -> str:
    """The password of a FAB user in the environment whose secret is `access_key`."""
    digest = hmac.new(access_key.encode(), f"fab-user:{username}".encode(), hashlib.sha256)
    return digest.hexdigest()


def email_for(username: str) -> str:
    """FAB wants a unique e-mail address per user; this one is stable and never delivered."""
    return f"{hashlib.sha256(username.encode()).hexdigest()[:24]}@{EMAIL_DOMAIN}"


def service_login(access_key: str) -> Login:
    return Login(SERVICE_USER, password_for(access_key, SERVICE_USER))


HASH_MARK = "airdock-password-hash:"
# FAB checks passwords with werkzeug; the environment's own werkzeug makes the hash, so the
# method is one that the environment's version knows.
_HASH_CHILD = (
    "import os\n"
    "from werkzeug.security import generate_password_hash\n"
    f"print({HASH_MARK!r} + generate_password_hash(os.environ['AIRDOCK_FAB_PASSWORD']))\n"
)
HASH_TIMEOUT = 60.0


def password_hash(
    plan: RuntimePlan, env: dict[str, str], launcher: Launcher, login: Login
) -> str | None:
    """FAB's stored form of `login`'s password, made in the environment (confined by
    `launcher`, the password in the child's environment only); None when it could not be."""
    child_env = {**env, "AIRDOCK_FAB_PASSWORD": login.password}
    launch = launcher(plan, [plan.python, "-c", _HASH_CHILD], child_env)
    result = procs.run(
        launch.argv, timeout=HASH_TIMEOUT, env=launch.env, cwd=launch.cwd,
        identity=launch.identity(),
    )  # fmt: skip
    if result.ok:
        for line in reversed(result.output.splitlines()):
            if line.startswith(HASH_MARK):
                return line.removeprefix(HASH_MARK).strip()
    return None


def ensure_service_user(
    plan: RuntimePlan,
    env: dict[str, str],
    launcher: Launcher,
    access_key: str,
    *,
    migrate_first: bool = False,
) -> str | None:
    """Create (or reset) the environment's service user, an Admin, with the environment's
    Airflow, after migrating the database in the same process if `migrate_first`; None when
    done, else what went wrong. Idempotent."""
    login = service_login(access_key)
    child_env = {
        **env,
        "AIRDOCK_FAB_USERNAME": login.username,
        "AIRDOCK_FAB_PASSWORD": login.password,
        "AIRDOCK_FAB_EMAIL": email_for(login.username),
        "AIRDOCK_FAB_ROLE": "Admin",
        "AIRDOCK_MIGRATE_FIRST": "1" if migrate_first else "0",
    }
    log_name = "db-migrate.log" if migrate_first else "fab-users.log"
    log_path = plan.workspace / "state" / "logs" / log_name
    log_path.parent.mkdir(parents=True, exist_ok=True)
    script = Path(env["AIRFLOW_HOME"]) / ".airdock" / CHILD_SOURCE.name
    launch = launcher(plan, [plan.python, str(script)], child_env)
    with open(log_path, "a", encoding="utf-8") as log:
        result = procs.run(
            launch.argv,
            timeout=BOOTSTRAP_TIMEOUT + (MIGRATE_TIMEOUT if migrate_first else 0.0),
            env=launch.env,
            cwd=launch.cwd,
            log=log,
            identity=launch.identity(),
        )
    if result.ok:
        return None
    why = "timed out" if result.timed_out else f"exited with code {result.returncode}"
    tail = " ".join(result.output.strip().splitlines()[-3:])[-600:]
    if result.returncode == MIGRATION_FAILED:
        return f"`airflow db migrate` of the metadata database failed: {tail} (log: {log_path})"
    return f"Creating Airflow's service user {why}: {tail} (log: {log_path})"
