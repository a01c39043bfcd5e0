"""An environment's files on this host: `<data-dir>/environments/<Name>/`.

dags/      mirror of the DagS3Path prefix
plugins/   plugins.zip, extracted
venv/      the environment's own virtualenv
home/      AIRFLOW_HOME for the runtime and for DAG checks
state/     sync manifest, DAG report, startup environment, content hashes
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def for_environment(cls, data_dir: Path, name: str) -> Workspace:
        return cls(data_dir / "environments" / name)

    @property
    def dags(self) -> Path:
        return self.root / "dags"

    @property
    def plugins(self) -> Path:
        return self.root / "plugins"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def state(self) -> Path:
        return self.root / "state"

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
        with open(self.state / f"{name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read_json(self, name: str, default: Any) -> Any:
        try:
            return json.loads((self.state / name).read_text())
        except (FileNotFoundError, ValueError):
            return default

    def write_json(self, name: str, value: Any) -> None:
        atomic_write(self.state / name, json.dumps(value, sort_keys=True).encode())


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` so that readers see the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".airdock-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
