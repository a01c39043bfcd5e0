"""What the runtime keeps in an environment's workspace for its processes: AIRFLOW_HOME and
the Celery config in it, the AWS config folder, the secrets Airflow signs and encrypts with,
and the API server's port."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

from cryptography.fernet import Fernet

from environments.airflow import sandbox
from environments.airflow.runtime import configuration, identity, zygote
from environments.plumbing.files import atomic_write
from environments.workspace import Workspace

SECRETS_FILE = "runtime-secrets.json"
PORT_FILE = "runtime-port.json"


def prepare_home(workspace: Workspace) -> None:
    """AIRFLOW_HOME and what the runtime puts in it, handed to the environment's account
    (its folders become the account's; Airdock's own files stay read-only to it)."""
    sandbox.prepare(workspace)
    install_support_files(workspace)
    aws_folder(workspace).mkdir(parents=True, exist_ok=True)
    (workspace.home / "logs").mkdir(parents=True, exist_ok=True)
    sandbox.hand_over(workspace, workspace.home)


def install_support_files(workspace: Workspace) -> None:
    """The files the environment's Airflow runs of ours: Celery's settings, the fork hook,
    the FAB user script and the zygote."""
    support = workspace.home / ".airdock"
    for target, origin in (
        (support / f"{configuration.CELERY_CONFIG_MODULE}.py", configuration.CELERY_CONFIG_SOURCE),
        (support / f"{configuration.FORK_SHARING_MODULE}.py", configuration.FORK_SHARING_SOURCE),
        (support / identity.CHILD_SOURCE.name, identity.CHILD_SOURCE),
        (support / zygote.SCRIPT, zygote.SOURCE),
    ):
        source = origin.read_bytes()
        if not target.exists() or target.read_bytes() != source:
            atomic_write(target, source, mode=0o644)


def aws_folder(workspace: Workspace) -> Path:
    """The AWS config and the role's keys: in the environment's home, where its processes (and
    only they) can read them."""
    return workspace.home / ".airdock" / "aws"


def runtime_secrets(workspace: Workspace) -> dict[str, str]:
    """The Fernet key, the web and JWT secrets and the service user's: each made once and
    kept for good (a new Fernet key would leave the stored connections unreadable)."""
    found = workspace.read_json(SECRETS_FILE, None) or {}
    makers = {
        "fernet_key": lambda: Fernet.generate_key().decode(),
        "secret_key": lambda: secrets.token_urlsafe(32),
        "jwt_secret": lambda: secrets.token_urlsafe(32),
        identity.SECRET_NAME: lambda: secrets.token_urlsafe(32),
    }
    missing = {name: make() for name, make in makers.items() if name not in found}
    if not missing:
        return found
    # Only the missing ones are made: an environment's Fernet key never changes.
    made = {**found, **missing}
    workspace.write_json(SECRETS_FILE, made)
    return made


def last_port(workspace: Workspace) -> int:
    """The API/web server's last port while it is free (so its address survives restarts),
    else a new one."""
    port = workspace.read_json(PORT_FILE, {}).get("port")
    if not port or not _free(port):
        port = free_port()
        remember_port(workspace, port)
    return int(port)


def remember_port(workspace: Workspace, port: int) -> None:
    workspace.write_json(PORT_FILE, {"port": port})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
