"""The identity bridge: Airdock acting toward an environment's Airflow as an MWAA role.

Every door into an environment (web login, the CLI endpoint, InvokeRestApi, the console's
links) ends in a request to that environment's Airflow, made as the caller's IAM identity with
the Airflow role its policies allow (Admin, Op, User, Viewer; Public has no permission). This
package turns (environment, identity, role) into credentials Airflow itself accepts, so
Airflow's own permission checks decide what the caller may do, as on MWAA:

    access = AirflowAccess(data_dir)
    login = access.login_for("env", "assumed-role/Admin/alice", "Viewer")   # FAB user + password
    headers = access.headers_for("env", "assumed-role/Admin/alice", "Viewer")
    response = access.request("env", "assumed-role/Admin/alice", "Viewer", "GET", "/dags")

How (the Airflow side is `environments.airflow.runtime.identity`):

- users: one FAB user per IAM identity (`assumed-role~Admin~alice`), whose password is an HMAC
  under the environment's secret. The first use of an identity, and any change of its role,
  goes through FAB's user API (`/auth/fab/v1/users`) as the environment's service user, an
  Admin the runtime creates at start with Airflow's own code;
- 3.x: `FabAuthManager`; the user's password buys a JWT at `POST /auth/token`, which the v2
  REST API (`/api/v2`) takes as `Authorization: Bearer`;
- 2.x: FAB is the web server's auth; the v1 REST API (`/api/v1`) takes basic auth, which
  starts a session, and then the session cookie, so the password hash is checked once per
  identity and process rather than on every call.

Credentials are cached per process, keyed by the environment's address and secret, and fetched
again when Airflow answers 401 (a restarted environment, a new database). Nothing here logs a
password, a token or a cookie. Where the environment's Airflow listens comes from the runtime's
own files in its workspace (`endpoint`).
"""

from environments.airflow.access.bridge import AirflowAccess, AirflowUnreachable
from environments.airflow.access.endpoint import AirflowEndpoint, NotRunning

__all__ = ["AirflowAccess", "AirflowEndpoint", "AirflowUnreachable", "NotRunning"]
