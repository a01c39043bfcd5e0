"""An environment's files on this host: `<data-dir>/environments/<Name>/`.

dags/      mirror of the DagS3Path prefix
plugins/   plugins.zip, extracted
venv/      the environment's own virtualenv
home/      AIRFLOW_HOME for the runtime and for DAG checks; home/.pycache their bytecode
state/     sync manifest, DAG report, startup environment, content hashes
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from environments.plumbing.files import atomic_write
from environments.plumbing.locks import FileLock


def _folder(name: str) -> property:
    """A fixed folder under the workspace root (see the module docstring)."""

    def path(self: Workspace) -> Path:
        return self.root / name

    return property(path)


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def for_environment(cls, data_dir: Path, name: str) -> Workspace:
        return cls(data_dir / "environments" / name)

    dags = _folder("dags")
    plugins = _folder("plugins")
    venv = _folder("venv")
    home = _folder("home")
    state = _folder("state")

    @property
    def bytecode(self) -> Path:
        """Where the environment's Pythons keep bytecode (PYTHONPYCACHEPREFIX): the venv is
        not theirs to write, and the synced dags folder is not the place."""
        return self.home / ".pycache"

    def create(self) -> None:
        for path in (self.dags, self.plugins, self.home, self.state):
            path.mkdir(parents=True, exist_ok=True)

    def remove(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """An exclusive lock between processes (the server and `airdock env sync`)."""
        self.state.mkdir(parents=True, exist_ok=True)
        with FileLock(self.state / f"{name}.lock"):
            yield

    def read_json(self, name: str, default: Any) -> Any:
        try:
            return json.loads((self.state / name).read_text())
        except (FileNotFoundError, ValueError):
            return default

    def write_json(self, name: str, value: Any) -> None:
        atomic_write(self.state / name, json.dumps(value, sort_keys=True).encode())
