"""System accounts that Airdock creates for the processes it runs on others' behalf.

When Airdock runs as root, the embedded PostgreSQL and every environment's user code run as
accounts of their own: no login shell, no home directory, a private group of the same name.
`useradd` and `userdel` take the system's own locks on /etc/passwd, so two processes asking for
the same account at once both end up with it.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

NOLOGIN = next(
    (shell for shell in ("/usr/sbin/nologin", "/sbin/nologin") if os.path.exists(shell)),
    "/bin/false",
)


class AccountError(RuntimeError):
    """An account could not be made (no useradd, not root, a name clash...)."""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


def running_as_root() -> bool:
    return os.geteuid() == 0


def can_create_accounts() -> bool:
    return all(shutil.which(tool) or os.path.exists(f"/usr/sbin/{tool}") for tool in
               ("useradd", "userdel", "groupdel"))  # fmt: skip


def ensure_account(name: str, comment: str = "Airdock") -> Account:
    """The system account `name` with its own group, created when it does not exist yet."""
    found = lookup(name)
    if found is not None:
        return found
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    done = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", NOLOGIN, "--comment", comment, name],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    found = lookup(name)  # also when another process created it first
    if found is None:
        reason = done.stderr.strip() or f"exit code {done.returncode}"
        raise AccountError(f"could not create the system account {name!r}: {reason}")
    return found


def open_path_to(path: Path) -> list[Path]:
    """Let other accounts traverse every folder above `path` (o+x: they may pass through,
    not list). Accounts of our own reach their folders under the data dir only this way.
    Returns the folders that were changed, for the caller to report."""
    changed = []
    for parent in reversed(Path(path).absolute().parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode & 0o7777 | 0o001)
            changed.append(parent)
    return changed


def lookup(name: str) -> Account | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def remove_account(name: str) -> None:
    """Remove the account and its private group; an account that is gone is no error."""
    if lookup(name) is None:
        return
    userdel = shutil.which("userdel") or "/usr/sbin/userdel"
    subprocess.run([userdel, name], capture_output=True, check=False)
    try:
        grp.getgrnam(name)
    except KeyError:
        return
    groupdel = shutil.which("groupdel") or "/usr/sbin/groupdel"
    subprocess.run([groupdel, name], capture_output=True, check=False)
