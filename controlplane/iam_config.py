"""The principal directory in effect, and its reload when the IAM config file changes.

The directory is the YAML file given to `airdock serve --iam-config` (shape: see
:mod:`iam.directory_loader`), plus the bootstrap admin (always full access) and the keys minted
with `airdock iam create-access-key`. A managed policy may be given as ``file://PATH``, relative
to the config file (as the AWS CLI reads policy documents), so the JSON files in
``infra/policies`` are used as they are.

A background thread stats the config and its policy files once a second; a change is parsed off
to the side and swapped in atomically. A broken file is logged and the last good directory stays
in effect. At start-up a broken file is an error: better to refuse to start than to run with a
policy set nobody wrote.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import yaml

import iam
from controlplane.credentials import KeyPair
from controlplane.keystore import KeyCache, KeyStore, KeyStoreError
from environments.plumbing.files import atomic_write
from environments.plumbing.watching import FileWatch
from environments.store import Store

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
SOURCE_FILE = "config-source.json"  # under DATA_DIR/iam: which config the server reads
FILE_PREFIX = "file://"


class IamConfigError(Exception):
    """The IAM config file cannot be used. The message names the file and the place in it, and
    never quotes the file's text (it may hold secrets)."""


def _yaml_problem(err: yaml.YAMLError) -> str:
    # str(err) quotes a snippet of the document, which may be a secret: report position only.
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or "not valid YAML"
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return problem


def _read_text(path: Path, where: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise IamConfigError(f"{where}: cannot read {path}: {type(err).__name__}") from None


def _read_watched(path: Path, where: str, watched: FileWatch) -> str:
    watched.note(path)
    return _read_text(path, where)


def _policy_files(data: Any, base: Path, watched: FileWatch) -> Any:
    """Replace ``file://PATH`` managed policies by the text of those files."""
    if not isinstance(data, dict) or not isinstance(data.get("policies"), dict):
        return data
    policies = dict(data["policies"])
    for name, doc in policies.items():
        if isinstance(doc, str) and doc.startswith(FILE_PREFIX):
            path = base / doc[len(FILE_PREFIX) :]
            policies[name] = _read_watched(path, f"policies.{name}", watched)
    return {**data, "policies": policies}


def read_config(path: Path, account_id: str, watched: FileWatch | None = None) -> iam.Directory:
    """Parse and validate one IAM config file (YAML or JSON). Every file read is noted in
    ``watched`` just before the read, also when the config is broken."""
    watched = FileWatch() if watched is None else watched
    try:
        data: Any = yaml.safe_load(_read_watched(path, str(path), watched))
    except yaml.YAMLError as err:
        raise IamConfigError(f"{path}: {_yaml_problem(err)}") from None
    data = _policy_files(data, path.parent, watched)
    try:
        return iam.Directory.from_mapping(data or {}, default_account_id=account_id)
    except (iam.DirectoryError, iam.PolicyError) as err:
        raise IamConfigError(f"{path}: {err}") from None


class DirectorySource:
    """Holds the current :class:`iam.Directory`; :attr:`current` is a plain attribute read."""

    def __init__(
        self,
        *,
        path: Path | None,
        account_id: str,
        admin: KeyPair,
        keys: KeyCache | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.path = path
        self._account_id = account_id
        self._admin = admin
        self._keys = keys
        self._poll_seconds = poll_seconds
        self._watched = FileWatch()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: iam.Directory = self._build()  # raises IamConfigError at start-up

    @property
    def keys(self) -> KeyCache | None:
        """The minted keys and sessions the directory consults."""
        return self._keys

    def _build(self) -> iam.Directory:
        if self.path is None:
            base = iam.Directory.from_mapping({}, default_account_id=self._account_id)
        else:
            watched = FileWatch()
            try:
                base = read_config(self.path, self._account_id, watched)
            finally:
                self._watched = watched
        try:
            directory = base.with_admin(self._admin.access_key_id, self._admin.secret_access_key)
        except iam.DirectoryError as err:
            raise IamConfigError(f"{self.path}: {err}") from None
        if self._keys is not None:
            directory = directory.with_key_source(self._keys.lookup)
        return directory

    def check(self) -> bool:
        """Reload if the file changed; True when a new directory was swapped in."""
        if self._keys is not None:
            self._keys.refresh()
        if self.path is None:
            return False
        if not self._watched.changed():
            return False
        try:
            directory = self._build()
        except IamConfigError as err:
            # _build recorded the stats of what it read, so each broken version is reported
            # once, not every second.
            log.error("IAM config not reloaded, the previous one stays in effect: %s", err)
            return False
        self.current = directory
        log.info(
            "IAM config reloaded from %s: %d users, %d roles, %d groups",
            self.path,
            len(directory.users) - 1,  # without the built-in admin
            len(directory.roles),
            len(directory.groups),
        )
        return True

    def _run(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                self.check()
            except Exception:  # the watcher must outlive any surprise
                log.exception("IAM config watcher failed; retrying")

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="iam-config", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def record_config_source(data_dir: Path, path: Path | None) -> None:
    """Note which config the server reads, so `airdock iam` commands check users against it."""
    value = str(path.resolve()) if path else None
    (data_dir / "iam").mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(data_dir / "iam" / SOURCE_FILE, json.dumps({"iam_config": value}) + "\n")


def recorded_config_source(data_dir: Path) -> Path | None:
    try:
        data = json.loads((data_dir / "iam" / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return None
    value = data.get("iam_config") if isinstance(data, dict) else None
    return Path(value) if isinstance(value, str) else None


def open_directory(
    data_dir: Path, iam_config: Path | None, account_id: str, admin: KeyPair, db: Store
) -> DirectorySource:
    """The server's directory: config file (validated now), admin, and the minted-key store."""
    store = KeyStore(data_dir, db)
    iam_config = iam_config.resolve() if iam_config else None  # the watcher outlives any chdir
    source = DirectorySource(
        path=iam_config, account_id=account_id, admin=admin, keys=KeyCache(store)
    )
    try:
        store.ensure_key()
        if moved := store.import_legacy_file():
            log.info("moved %d minted access keys from the data dir into the store", moved)
    except KeyStoreError as err:
        raise IamConfigError(str(err)) from None
    record_config_source(data_dir, iam_config)
    directory = source.current
    log.info(
        "IAM: %s (%d users, %d roles, %d groups) plus the bootstrap admin; minted keys in %s",
        iam_config or "no --iam-config",
        len(directory.users) - 1,
        len(directory.roles),
        len(directory.groups),
        "the store",
    )
    return source
