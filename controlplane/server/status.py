"""The state of every supervised part, as the supervisor records it and the API reports it.

The supervisor rewrites `<data dir>/run/parts.json` atomically whenever a part changes state.
An API worker answers `/_airdock/health` from it: a stat per request, and a read and parse only
when the file changed, so the health endpoint stays as cheap as any other call.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from environments.plumbing.files import atomic_write
from environments.plumbing.watching import Signature, signature

STATUS_FILE = Path("run") / "parts.json"

UP = "up"
STARTING = "starting"
DOWN = "down"
STOPPED = "stopped"


@dataclass
class PartState:
    state: str = STARTING
    pid: int | None = None
    restarts: int = 0
    since: float = 0.0  # when it entered this state (epoch seconds)
    last_exit: str | None = None  # how it last ended, e.g. "killed by SIGKILL"


def status_path(data_dir: Path) -> Path:
    return data_dir / STATUS_FILE


def write_status(data_dir: Path, supervisor_pid: int, parts: dict[str, PartState]) -> None:
    document = {
        "supervisor_pid": supervisor_pid,
        "written_at": time.time(),
        "parts": {name: asdict(part) for name, part in parts.items()},
    }
    # Rewritten on every change and read by the API, never needed after a crash: no fsync of
    # the directory, the next start writes it anew.
    atomic_write(
        status_path(data_dir), json.dumps(document) + "\n", mode=0o600, sync_directory=False
    )


def read_status(data_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads(status_path(data_dir).read_text())
    except (OSError, ValueError):
        return None


class HealthReport:
    """The health answer an API worker gives, from the supervisor's status file."""

    def __init__(self, data_dir: Path) -> None:
        self._path = status_path(data_dir)
        self._seen: Signature | None = None
        self._answer: tuple[bool, dict[str, Any]] = (False, {"status": "starting"})

    def current(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, body): healthy when every part is up."""
        seen = signature(self._path)
        if seen != self._seen:
            self._seen = seen
            self._answer = self._from(read_status(self._path.parent.parent))
        return self._answer

    @staticmethod
    def _from(document: dict[str, Any] | None) -> tuple[bool, dict[str, Any]]:
        if not document or not isinstance(document.get("parts"), dict):
            return False, {"status": "starting"}
        parts = {
            name: {"state": part.get("state"), "restarts": part.get("restarts", 0)}
            for name, part in document["parts"].items()
        }
        healthy = all(part["state"] == UP for part in parts.values())
        return healthy, {"status": "ok" if healthy else "degraded", "parts": parts}
