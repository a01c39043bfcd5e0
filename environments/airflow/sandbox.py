"""How user code runs: never with Airdock's rights.

The startup script, requirements installs (an sdist's build backend runs code), DAG checks and
every Airflow component run code that the environment's owner wrote. Each of them is started
through `confine`, which turns (environment, argv, environment variables, cwd) into a `Launch`:
the argv to execute plus the identity to take (user, group, supplementary groups, umask).

    launch = confine(workspace, ["python", "-c", "..."], {"PATH": ...}, workspace.home)
    result = processes.run(launch.argv, env=launch.env, cwd=launch.cwd,
                           identity=launch.identity(), timeout=...)

The contract:

- The process can read its environment's workspace (dags/, plugins/, the venv) and write only
  in `home/` (AIRFLOW_HOME), `tmp/` (`launch.scratch`: HOME and TMPDIR point there) and the
  paths passed as `writable` (which must lie inside the workspace).
- It can read none of Airdock's own files: admin.json, the key store, the SQLite store, the
  embedded AWS's state, the uv cache, the metadata server's files, other workspaces.
- `env` is passed as given (plus HOME, TMPDIR, USER): callers build it from nothing, never from
  os.environ, so no credential of the server leaks in.
- Airdock itself writes into home/ and tmp/ (which the account owns) only under names the
  account cannot guess, and reads back what the process wrote without following links.

Three modes, chosen once per process (`mode()`), said loudly at start (`describe()`):

- `accounts` (Airdock runs as root): each environment runs as a system account of its own,
  `airdock-<hash>`, stable for a workspace path. The workspace root and its read-only parts
  belong to root with the account's group; home/ and tmp/ belong to the account.
- `bubblewrap` (not root, `bwrap` installed): the process runs in a mount namespace where the
  whole file system is read-only, the data dir is hidden behind an empty tmpfs and only the
  workspace (read-only) and its writable parts are mounted back.
- `none`: neither is available; user code runs as Airdock itself. Airdock warns at start.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from environments.plumbing import os_users
from environments.workspace import Workspace

log = logging.getLogger(__name__)

ACCOUNTS, BUBBLEWRAP, NONE = "accounts", "bubblewrap", "none"
ACCOUNT_PREFIX = "airdock-"
# Created files: readable by the environment's own group (its account), by nobody else.
UMASK = 0o027


@dataclass(frozen=True)
class Launch:
    """How to start one confined process; see the module docstring for the contract."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    scratch: Path  # writable by the process: its HOME and TMPDIR
    user: int | None = None
    group: int | None = None
    extra_groups: tuple[int, ...] | None = None
    umask: int = UMASK
    mode: str = NONE
    notes: list[str] = field(default_factory=list)

    def identity(self) -> dict:
        """Keyword arguments for processes.spawn / processes.run (and subprocess.Popen)."""
        ids: dict = {"umask": self.umask}
        if self.user is not None:
            ids.update(user=self.user, group=self.group, extra_groups=self.extra_groups or ())
        return ids


@functools.cache
def mode() -> str:
    if os_users.running_as_root() and os_users.can_create_accounts():
        return ACCOUNTS
    if _bubblewrap_works():
        return BUBBLEWRAP
    return NONE


def describe() -> str:
    """One line for the start-up banner; the `none` mode's is a warning."""
    return {
        ACCOUNTS: "user code runs as one system account per environment",
        BUBBLEWRAP: "user code runs in a bubblewrap sandbox (read-only system, data dir hidden)",
        NONE: "WARNING: user code (startup scripts, requirements installs, DAGs) runs with "
        "Airdock's own rights: run Airdock as root (one account per environment) or install "
        "bubblewrap (bwrap) to confine it",
    }[mode()]


def account_name(workspace: Workspace) -> str:
    """Stable for a workspace path: the same environment of the same data dir always gets the
    same account, and environments of two data dirs never share one."""
    digest = hashlib.sha256(str(workspace.root.absolute()).encode()).hexdigest()
    return ACCOUNT_PREFIX + digest[:12]


def scratch_dir(workspace: Workspace) -> Path:
    return workspace.root / "tmp"


def prepare(workspace: Workspace) -> os_users.Account | None:
    """Make the workspace fit the contract (idempotent, cheap): the account, then owners and
    modes. Returns the account in `accounts` mode."""
    workspace.create()
    scratch = scratch_dir(workspace)
    scratch.mkdir(exist_ok=True)
    if mode() != ACCOUNTS:
        for private in (workspace.root, workspace.home, scratch):
            private.chmod(0o700)
        return None
    account = os_users.ensure_account(account_name(workspace), _comment(workspace))
    environments = workspace.root.parent
    for folder in (environments.parent, environments):  # the data dir, then environments/
        folder.chmod(0o711)
    for folder in os_users.open_path_to(workspace.root):
        log.warning("made %s traversable (o+x) for the environment accounts", folder)
    _own(workspace.root, 0, account.gid, 0o750)
    if workspace.dags.stat().st_gid != account.gid:
        _share_tree(workspace.dags, account.gid)  # written before it had an account
    for shared in (workspace.dags, workspace.plugins):
        # setgid: files the sync writes later inherit the group, so the account reads them.
        _own(shared, 0, account.gid, 0o2750)
    _share_tree(workspace.plugins, account.gid)  # replaced by a rename on each extraction
    _own(workspace.state, 0, 0, 0o700)  # manifests, the startup script, reports: ours
    for private in (workspace.home, scratch):
        _own(private, account.uid, account.gid, 0o700)
    store = workspace.venv.parent / f".{workspace.venv.name}.d"
    if store.exists():
        _own(store, 0, account.gid, 0o750)
    _open_interpreter()
    return account


def hand_over(workspace: Workspace, tree: Path) -> None:
    """Let the environment's account write in `tree` (a folder of its workspace): its folders
    become the account's. Files keep their owner: a file hardlinked from a shared cache stays
    read-only for the account, which may still replace it in its own folder."""
    if mode() != ACCOUNTS:
        return
    account = prepare(workspace)
    if account is None:
        return
    for folder, _dirs, _files in os.walk(tree):  # symlinked folders are not followed
        os.lchown(folder, account.uid, account.gid)


def close_tree(workspace: Workspace, tree: Path) -> None:
    """Folders of `tree` (a virtualenv the installer made world-readable) become the
    environment's alone: nothing for other accounts, group access for the environment's.
    Files keep their modes: those hardlinked from the shared cache are shared inodes."""
    account = prepare(workspace) if mode() == ACCOUNTS else None
    for folder, _dirs, _files in os.walk(tree):
        path = Path(folder)
        if account is not None and path.lstat().st_gid != account.gid:
            os.lchown(path, -1, account.gid)
        path.chmod(path.lstat().st_mode & 0o7770 | 0o050)


def confine(
    workspace: Workspace,
    argv: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str],
    cwd: Path,
    *,
    writable: Sequence[Path] = (),
) -> Launch:
    """A Launch for `argv` on behalf of the environment that owns `workspace`."""
    account = prepare(workspace)
    scratch = scratch_dir(workspace)
    argv = [os.fspath(part) for part in argv]
    full_env = {**env, "HOME": str(scratch), "TMPDIR": str(scratch)}
    if account is not None:
        full_env.update(USER=account.name, LOGNAME=account.name)
        return Launch(argv, full_env, cwd, scratch, account.uid, account.gid, (), UMASK, ACCOUNTS)
    if mode() == BUBBLEWRAP:
        wrapped = _bubblewrap(workspace, scratch, writable, cwd) + argv
        return Launch(wrapped, full_env, cwd, scratch, mode=BUBBLEWRAP)
    return Launch(argv, full_env, cwd, scratch, mode=NONE)


def release(workspace: Workspace) -> None:
    """Teardown: the environment's account goes with its workspace."""
    if mode() == ACCOUNTS:
        os_users.remove_account(account_name(workspace))


def remove_orphans() -> list[str]:
    """Remove the accounts of workspaces that no longer exist (a data dir deleted without
    deleting its environments first). The account's comment names its workspace."""
    if mode() != ACCOUNTS:
        return []
    removed = []
    for entry in pwd.getpwall():
        if not entry.pw_name.startswith(ACCOUNT_PREFIX) or not entry.pw_gecos.startswith(_COMMENT):
            continue
        root = Path(entry.pw_gecos.removeprefix(_COMMENT))
        if not root.exists() and account_name(Workspace(root)) == entry.pw_name:
            os_users.remove_account(entry.pw_name)
            removed.append(entry.pw_name)
    return removed


# --- internals ---------------------------------------------------------------------------


_COMMENT = "Airdock workspace "


def _comment(workspace: Workspace) -> str:
    return _COMMENT + str(workspace.root.absolute())


def _own(path: Path, uid: int, gid: int, mode_bits: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    stat = path.lstat()
    if (stat.st_uid, stat.st_gid) != (uid, gid):
        os.lchown(path, uid, gid)
    if stat.st_mode & 0o7777 != mode_bits:
        path.chmod(mode_bits)


def _share_tree(tree: Path, gid: int) -> None:
    """Group-readable for the account: a tree written by Airdock (root) with a private mode."""
    for folder, dirs, files in os.walk(tree):
        for name in dirs:
            path = Path(folder) / name
            os.lchown(path, 0, gid)
            path.chmod(0o2750)
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                os.lchown(path, 0, gid)
                bits = path.stat().st_mode
                path.chmod(bits & 0o750 | 0o040 | (bits & 0o100) >> 3)


def _open_interpreter() -> None:
    """The accounts run Python interpreters that may live below root's private home (pyenv,
    for instance): the folders above them, and above Airdock's own files, become traversable."""
    reachable(Path(os.path.realpath(sys._base_executable)), Path(__file__).resolve())


def reachable(*paths: Path) -> None:
    """Let the environment accounts reach `paths` (programs and files of Airdock they run or
    read): the folders above each become traversable, once per process."""
    if mode() != ACCOUNTS:
        return
    for path in paths:
        _open_once(Path(path).resolve())


@functools.cache
def _open_once(path: Path) -> None:
    for folder in os_users.open_path_to(path):
        log.warning("made %s traversable (o+x) for the environment accounts", folder)


def _bubblewrap(workspace: Workspace, scratch: Path, writable: Sequence[Path], cwd: Path) -> list:
    data_dir = workspace.root.parent.parent
    argv = [
        shutil.which("bwrap") or "bwrap",
        "--die-with-parent", "--unshare-all", "--share-net", "--new-session",
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
        "--tmpfs", str(data_dir),
        "--ro-bind", str(workspace.root), str(workspace.root),
    ]  # fmt: skip
    for path in (workspace.home, scratch, *writable):
        argv += ["--bind", str(path), str(path)]
    # The tmpfs that hides the data dir is read-only too, once the mount points exist in it.
    argv += ["--remount-ro", str(data_dir)]
    return [*argv, "--chdir", str(cwd), "--"]


def _bubblewrap_works() -> bool:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False
    try:
        probe = subprocess.run(
            [bwrap, "--ro-bind", "/", "/", "--unshare-all", "--", "true"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0
