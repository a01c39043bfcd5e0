"""What a worker on another host needs from the control plane's host to join an environment.

The control plane writes it (`worker-join.json`, 0600, in the environment's state folder,
which only Airdock reads) whenever it starts the environment's processes; `airdock env
worker-config NAME` prints it for the operator to copy to the worker host. It holds what
exists only on this host: the metadata database's address and login, the secrets Airflow's
processes share (Fernet key, JWT secret) and the address of the execution API: the
environment's HTTPS address, whose door forwards to whichever set of processes serves (a
rolling update moves the API server to a new port; a set's own port would go stale), or that
port where no door is given. `airdock worker-join` adds the door's CA certificate. Everything
else (bucket, DAG folder, requirements, execution role, queue) the worker asks the MWAA API
for, with the operator's own credentials, so the operator's IAM rights still decide.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from environments.airflow.runtime.plan import RuntimePlan
from environments.plumbing.files import atomic_write

JOIN_FILE = "worker-join.json"
CA_FIELD = "ca_certificate"  # PEM; optional: the execution API's door is plain HTTP without it
FIELDS = ("environment", "env_id", "airflow_version", "database_url", "execution_api_url",
          "queue_url", "fernet_key", "secret_key", "jwt_secret")  # fmt: skip


class JoinError(ValueError):
    pass


def join_bundle(plan: RuntimePlan, secrets: dict[str, str], api_port: int) -> dict[str, Any]:
    return {
        "environment": plan.name,
        "env_id": plan.env_id,
        "airflow_version": plan.airflow_version,
        "database_url": plan.database_url,
        "execution_api_url": f"{plan.web_url or f'http://127.0.0.1:{api_port}'}/execution/",
        "queue_url": plan.queue_url,
        "fernet_key": secrets["fernet_key"],
        "secret_key": secrets["secret_key"],
        "jwt_secret": secrets["jwt_secret"],
    }


def write_join(state: Path, bundle: dict[str, Any]) -> None:
    atomic_write(state / JOIN_FILE, json.dumps(bundle, indent=2) + "\n", mode=0o600)


def read_join(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise JoinError(f"cannot read the join file {path}: {err}") from None
    missing = [f for f in FIELDS if not isinstance(data, dict) or not data.get(f)]
    if missing:
        raise JoinError(f"the join file {path} lacks {', '.join(missing)}")
    return data
