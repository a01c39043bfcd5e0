"""Regenerate environments/airflow/lockfiles/airflow-<version>.txt with `uv pip compile`.

Each lock is the fully pinned, hashed package set an environment's virtualenv starts from:
Apache Airflow with the extras MWAA images install (celery, statsd) and the providers they
carry (amazon with aiobotocore, celery, postgres, and fab where Airflow does not pull it in).

How a lock is made reproducible:

* Provider versions are the ones the upstream constraints file `constraints-<version>` lists
  (the file MWAA copies into its image as AIRFLOW_CONSTRAINTS_FILE), written down below.
* Every other package resolves to the highest version uploaded before the day upstream
  generated that constraints file (`--exclude-newer`), which is how the constraints themselves
  were produced. Airflow's own distributions are allowed up to their release day
  (`--exclude-newer-package`), since the release came after its constraints.
* The packages MWAA refuses to let a requirements.txt change (its "essential constraints":
  celery, kombu, Flask, Flask-AppBuilder, SQLAlchemy, gunicorn, ...) and the AWS SDK are held at
  the values of the upstream constraints with `-c`.
* Target: CPython 3.11 on Linux x86_64 (`--python-version 3.11 --python-platform
  x86_64-manylinux_2_28`), hashes for every file (`--generate-hashes`).

For 2.7.2 and 2.8.1 no upstream constraint values are recorded here: their providers are simply
the newest compatible ones at the Airflow release day. Re-running the script with the same uv
gives the same files as long as PyPI does not delete or yank a pinned release.

    .venv/bin/python scripts/refresh_locks.py               # all versions
    .venv/bin/python scripts/refresh_locks.py 3.0.6 2.10.3  # some
    .venv/bin/python scripts/refresh_locks.py --check       # fail if a lock is out of date
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "environments" / "locks"
PYTHON_VERSION = "3.11"
PLATFORM = "x86_64-manylinux_2_28"
AIRFLOW_DISTRIBUTIONS = ("apache-airflow", "apache-airflow-core", "apache-airflow-task-sdk")


@dataclass(frozen=True)
class LockSpec:
    airflow: str
    # Day upstream generated constraints-<airflow> (or the release day when not recorded).
    resolve_date: str
    # Day (UTC) after which Airflow's own distributions and the pinned providers are ignored.
    airflow_date: str
    providers: dict[str, str] = field(default_factory=dict)  # provider -> version ("" = newest)
    pins: dict[str, str] = field(default_factory=dict)  # held at the upstream constraints value
    source: str = "constraints"  # "constraints" or "resolved" (see module docstring)


# Values from https://raw.githubusercontent.com/apache/airflow/constraints-<v>/constraints-3.11.txt
# (3.12 for 3.0.6, the Python MWAA runs it on), one column per Airflow version. GENERATED_ON is
# the "generated on" line of that file, RELEASED_ON the day Airflow itself was released.
# fmt: off
RECORDED =     ("3.0.6",      "2.11.0",     "2.10.3",     "2.10.1",     "2.9.2")
GENERATED_ON = ("2025-08-24", "2025-05-20", "2024-11-06", "2024-09-03", "2024-06-07")
RELEASED_ON =  ("2025-08-30", "2025-05-21", "2024-11-06", "2024-09-07", "2024-06-11")
PROVIDERS: dict[str, tuple[str | None, ...]] = {
    #                    3.0.6      2.11.0     2.10.3     2.10.1     2.9.2
    "amazon":           ("9.12.0",  "9.8.0",   "9.0.0",   "8.28.0",  "8.24.0"),
    "celery":           ("3.12.2",  "3.11.0",  "3.8.3",   "3.8.1",   "3.7.2"),
    "postgres":         ("6.2.3",   "6.2.0",   "5.13.1",  "5.12.0",  "5.11.1"),
    "fab":              ("2.4.1",   None,      None,      None,      None),  # Airflow 2 pulls it in
}
HELD: dict[str, tuple[str, ...]] = {
    #                    3.0.6      2.11.0     2.10.3     2.10.1     2.9.2
    "celery":           ("5.5.2",   "5.5.2",   "5.4.0",   "5.4.0",   "5.4.0"),
    "kombu":            ("5.5.4",   "5.5.3",   "5.4.2",   "5.4.0",   "5.3.7"),
    "billiard":         ("4.2.1",   "4.2.1",   "4.2.1",   "4.2.0",   "4.2.0"),
    "flask":            ("2.2.5",   "2.2.5",   "2.2.5",   "2.2.5",   "2.2.5"),
    "flask-appbuilder": ("4.6.3",   "4.5.3",   "4.5.2",   "4.5.0",   "4.4.1"),
    "sqlalchemy":       ("1.4.54",  "1.4.54",  "1.4.54",  "1.4.53",  "1.4.52"),
    "gunicorn":         ("23.0.0",  "23.0.0",  "23.0.0",  "23.0.0",  "22.0.0"),
    "boto3":            ("1.39.11", "1.37.3",  "1.35.36", "1.35.7",  "1.34.106"),
    "botocore":         ("1.39.11", "1.37.3",  "1.35.36", "1.35.7",  "1.34.106"),
    "aiobotocore":      ("2.24.1",  "2.22.0",  "2.15.2",  "2.14.0",  "2.13.0"),
    "cryptography":     ("42.0.8",  "42.0.8",  "42.0.8",  "42.0.8",  "41.0.7"),
}
# fmt: on


def _recorded(column: int) -> LockSpec:
    return LockSpec(
        airflow=RECORDED[column],
        resolve_date=GENERATED_ON[column],
        airflow_date=RELEASED_ON[column],
        providers={name: v[column] for name, v in PROVIDERS.items() if v[column] is not None},
        pins={name: versions[column] for name, versions in HELD.items()},
    )


def _resolved(airflow: str, release_day: str) -> LockSpec:
    return LockSpec(
        airflow=airflow,
        resolve_date=release_day,
        airflow_date=release_day,
        providers=dict.fromkeys(("amazon", "celery", "postgres"), ""),
        source="resolved",
    )


SPECS: dict[str, LockSpec] = {
    spec.airflow: spec
    for spec in (
        *(_recorded(column) for column in range(len(RECORDED))),
        _resolved("2.8.1", "2024-01-20"),
        _resolved("2.7.2", "2023-10-13"),
    )
}

# Extras as MWAA's image bootstrap installs them:
# apache-airflow[celery,statsd] and apache-airflow-providers-amazon[aiobotocore].
AIRFLOW_EXTRAS = "celery,statsd"
PROVIDER_EXTRAS = {"amazon": "[aiobotocore]"}


def requirements_in(spec: LockSpec) -> str:
    lines = [f"apache-airflow[{AIRFLOW_EXTRAS}]=={spec.airflow}"]
    for provider, version in spec.providers.items():
        pin = f"=={version}" if version else ""
        lines.append(f"apache-airflow-providers-{provider}{PROVIDER_EXTRAS.get(provider, '')}{pin}")
    return "\n".join(lines) + "\n"


def compile_command(uv: str, spec: LockSpec, req: Path, con: Path, out: Path) -> list[str]:
    command = [
        uv, "pip", "compile", str(req), "-c", str(con), "-o", str(out),
        "--python-version", PYTHON_VERSION,
        "--python-platform", PLATFORM,
        "--generate-hashes",
        "--no-header",
        "--exclude-newer", f"{spec.resolve_date}T00:00:00Z",
    ]  # fmt: skip
    # Airflow and the providers pinned above are exact versions; only the cut-off of
    # everything else matters, so theirs moves to the release day.
    pinned = [f"apache-airflow-providers-{p}" for p, version in spec.providers.items() if version]
    for name in (*AIRFLOW_DISTRIBUTIONS, *pinned):
        command += ["--exclude-newer-package", f"{name}={spec.airflow_date}T00:00:00Z"]
    return command


def header(spec: LockSpec, resolved: dict[str, str]) -> str:
    providers = ", ".join(
        f"{name} {resolved.get(f'apache-airflow-providers-{name}', '?')}" for name in spec.providers
    )
    if spec.source == "constraints":
        pins = " ".join(f"{name}=={version}" for name, version in spec.pins.items())
        origin = (
            f"provider versions as listed in Airflow's constraints-{spec.airflow}; every other\n"
            f"# package is the newest uploaded before {spec.resolve_date} (the day those "
            "constraints were generated),\n# with MWAA's protected packages and the AWS SDK "
            "held at the constraints values:\n#   " + pins
        )
    else:
        origin = (
            f"no upstream constraint values recorded; providers and every other package are the\n"
            f"# newest compatible releases uploaded before {spec.resolve_date} "
            "(Airflow's release day)."
        )
    return (
        f"# Airdock lock for Apache Airflow {spec.airflow}: CPython {PYTHON_VERSION}, "
        f"Linux x86_64 ({PLATFORM}).\n"
        f"# airdock-lock: airflow={spec.airflow} python={PYTHON_VERSION} platform={PLATFORM}\n"
        f"# Generated by scripts/refresh_locks.py with uv pip compile; do not edit by hand.\n"
        f"# Contents: apache-airflow[{AIRFLOW_EXTRAS}] and providers {providers}.\n"
        f"# Origin: {origin}\n"
        f"# Flags: --python-version {PYTHON_VERSION} --python-platform {PLATFORM} "
        f"--generate-hashes --exclude-newer {spec.resolve_date}\n"
        f"#   --exclude-newer-package <airflow and pinned providers>={spec.airflow_date}\n"
    )


def pinned_versions(lock_text: str) -> dict[str, str]:
    versions = {}
    for line in lock_text.splitlines():
        if line and not line.startswith((" ", "#")) and "==" in line:
            name, _, rest = line.partition("==")
            versions[name.strip().lower()] = rest.split()[0].rstrip("\\").strip()
    return versions


def build_lock(uv: str, spec: LockSpec) -> str:
    with tempfile.TemporaryDirectory(prefix="airdock-lock-") as tmp:
        req, con, out = Path(tmp, "requirements.in"), Path(tmp, "pins.txt"), Path(tmp, "lock.txt")
        req.write_text(requirements_in(spec))
        con.write_text("".join(f"{name}=={version}\n" for name, version in spec.pins.items()))
        # Relative names, run from the temp dir: uv's "# via -c pins.txt" annotations must not
        # carry a random path, or two runs would never give the same file.
        command = compile_command(uv, spec, Path(req.name), Path(con.name), Path(out.name))
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"uv pip compile failed for {spec.airflow}:\n{done.stderr}")
        body = out.read_text()
    return header(spec, pinned_versions(body)) + body


# Airflow 2 still pulls a few packages published only as sdists (python-nvd3, unicodecsv, ...).
# uv builds them at install time in an isolated env whose tools would otherwise be today's
# newest, and old setup.py files break on them (setuptools removed pkg_resources). Pinning the
# build tools as of the lock's date makes those builds work and reproducible.
BUILD_TOOLS = ("setuptools", "wheel")


def build_constraints(uv: str, spec: LockSpec) -> str:
    with tempfile.TemporaryDirectory(prefix="airdock-lock-") as tmp:
        Path(tmp, "tools.in").write_text("".join(f"{tool}\n" for tool in BUILD_TOOLS))
        command = [
            uv, "pip", "compile", "tools.in", "-o", "tools.txt", "--no-header", "--no-annotate",
            "--python-version", PYTHON_VERSION, "--python-platform", PLATFORM,
            "--exclude-newer", f"{spec.resolve_date}T00:00:00Z",
        ]  # fmt: skip
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(
                f"uv pip compile (build tools) failed for {spec.airflow}:\n{done.stderr}"
            )
        body = Path(tmp, "tools.txt").read_text()
    return (
        f"# Build constraints for the sdists in airflow-{spec.airflow}.txt (uv -b): the build\n"
        f"# tools as of {spec.resolve_date}. Generated by scripts/refresh_locks.py.\n" + body
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("versions", nargs="*", help="Airflow versions (default: all)")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not uv:
        raise SystemExit("uv not found next to this Python or on PATH")
    unknown = [v for v in args.versions if v not in SPECS]
    if unknown:
        raise SystemExit(f"no lock recipe for {unknown}; known: {sorted(SPECS)}")
    LOCKS.mkdir(parents=True, exist_ok=True)
    stale = []
    for version in args.versions or list(SPECS):
        outputs = {
            LOCKS / f"airflow-{version}.txt": build_lock(uv, SPECS[version]),
            LOCKS / f"airflow-{version}.build.txt": build_constraints(uv, SPECS[version]),
        }
        for path, text in outputs.items():
            if args.check:
                if not path.exists() or path.read_text() != text:
                    stale.append(path.name)
                continue
            path.write_text(text)
            count = len(pinned_versions(text))
            print(f"{path.relative_to(ROOT)}: {count} packages")
    if stale:
        print("out of date: " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
