"""The lock files an environment's virtualenv starts from, one per supported Airflow version.

`lockfiles/airflow-<version>.txt` next to this module (and `.build.txt`, the build tools for its
sdists) are written by scripts/refresh_locks.py. Each lock carries a machine-readable line
`# airdock-lock: airflow=<v> python=<major.minor> platform=<tag>` that this module reads, so the
files stay the single source of truth for what is supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

LOCKS_DIR = Path(__file__).resolve().parent / "lockfiles"
_META = re.compile(r"^# airdock-lock: (?P<fields>.+)$", re.MULTILINE)

# The constraints URL every Airflow install guide (and MWAA's) tells users to put in
# requirements.txt. It cannot be fetched offline, but for a version we have a lock for, the lock
# is a pinned subset of exactly that file, so it stands in for it.
AIRFLOW_CONSTRAINTS_URL = re.compile(
    r"^https?://raw\.githubusercontent\.com/apache/airflow/constraints-(?P<version>[^/]+)/"
    r"constraints-(?:no-providers-|source-providers-)?(?P<python>\d+\.\d+)\.txt$"
)

# Packages MWAA never lets a requirements.txt move (its image's "essential constraints", applied
# even when the user brings their own constraints): changing them breaks the scheduler, workers
# or web server rather than the user's tasks.
ESSENTIAL_PACKAGES = frozenset(
    {
        "apache-airflow",
        "apache-airflow-core",
        "apache-airflow-task-sdk",
        "billiard",
        "celery",
        "flask",
        "flask-appbuilder",
        "flask-babel",
        "flask-bcrypt",
        "flask-caching",
        "flask-jwt-extended",
        "flask-limiter",
        "flask-login",
        "flask-session",
        "flask-sqlalchemy",
        "flask-wtf",
        "gevent",
        "greenlet",
        "gunicorn",
        "kombu",
        "sqlalchemy",
        "sqlalchemy-jsonfield",
        "sqlalchemy-utils",
        "statsd",
        "vine",
        "watchtower",
    }
)


@dataclass(frozen=True)
class AirflowLock:
    airflow_version: str
    python: str  # "3.11": the interpreter the lock was resolved for
    platform: str
    path: Path

    @property
    def build_constraints(self) -> Path | None:
        """Pins for the tools that build the lock's sdists (see scripts/refresh_locks.py)."""
        path = self.path.with_name(f"airflow-{self.airflow_version}.build.txt")
        return path if path.is_file() else None

    def read_bytes(self) -> bytes:
        """Everything the installed result depends on: the lock and its build constraints."""
        build = self.build_constraints
        return self.path.read_bytes() + (build.read_bytes() if build else b"")

    def pins(self) -> dict[str, str]:
        """Normalised package name -> pinned version."""
        return parse_pins(self.path.read_text())

    def essential_constraints(self) -> str:
        """`name==version` lines for the packages a user's requirements may not change."""
        pins = self.pins()
        return "".join(f"{name}=={pins[name]}\n" for name in sorted(ESSENTIAL_PACKAGES & set(pins)))


class UnsupportedAirflowVersion(LookupError):
    pass


def normalise(name: str) -> str:
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(text: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line[0] in " #\t" or "==" not in line:
            continue
        name, _, rest = line.partition("==")
        name = name.split("[", 1)[0]
        pins[normalise(name.strip())] = rest.split(";")[0].split()[0].rstrip("\\").strip()
    return pins


@cache
def _index(locks_dir: Path) -> dict[str, AirflowLock]:
    locks = {}
    for path in sorted(locks_dir.glob("airflow-*.txt")):
        if path.name.endswith(".build.txt"):
            continue
        with path.open() as handle:
            head = handle.read(4096)
        match = _META.search(head)
        if not match:
            continue
        fields = dict(part.split("=", 1) for part in match["fields"].split())
        version = fields["airflow"]
        locks[version] = AirflowLock(version, fields["python"], fields["platform"], path)
    return locks


def supported_versions(locks_dir: Path = LOCKS_DIR) -> list[str]:
    return sorted(_index(locks_dir), key=_version_key)


def lock_for(airflow_version: str, locks_dir: Path = LOCKS_DIR) -> AirflowLock:
    try:
        return _index(locks_dir)[airflow_version]
    except KeyError:
        raise UnsupportedAirflowVersion(
            f"No lock file for Airflow {airflow_version}; supported: "
            + ", ".join(supported_versions(locks_dir))
        ) from None


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))
