"""Reading a user's requirements.txt the way MWAA does, made safe and offline-aware.

What is honoured, rewritten or refused, and why:

* `-c` / `--constraint` lines are the user's choice of constraints. As in MWAA, a file that has
  one (even commented out: MWAA documents that as the way to opt out of its default constraints)
  is installed without the default constraints (the lock for the environment's Airflow version).
  The constraints URL of the Airflow install guide for a version we have a lock for is mapped to
  that lock, since the lock is a pinned subset of the very same file and the URL is not reachable
  here. Any other remote constraints file is refused (UNSUPPORTED_CONSTRAINTS) rather than left
  to fail deep inside the installer.
* Paths under MWAA's `/usr/local/airflow/plugins` (constraint files, `-r` files, `--find-links`
  folders, wheel files: MWAA's documented way to ship private wheels in plugins.zip) are mapped
  to the environment's plugins folder. Every other local path is refused: it would read files of
  the host running Airdock. Nested `-r` files are read with the same rules.
* `-e` / `--editable` is refused: there is no source tree to edit in an environment.
* `--index-url`, `--extra-index-url` and `--find-links` over http(s) are kept (MWAA allows
  private repositories such as CodeArtifact); without network access they fail in the installer
  with its own message. `--pre` and `--trusted-host`, which uv ignores inside a file, become the
  equivalent command-line flags.
"""

from __future__ import annotations

import codecs
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from environments.airflow.locks import (
    AIRFLOW_CONSTRAINTS_URL,
    LOCKS_DIR,
    UnsupportedAirflowVersion,
    lock_for,
    supported_versions,
)

MWAA_PLUGINS_DIR = "/usr/local/airflow/plugins"
MAX_NESTING = 5

INVALID_REQUIREMENTS = "INVALID_REQUIREMENTS"
UNSUPPORTED_CONSTRAINTS = "UNSUPPORTED_CONSTRAINTS"

# MWAA's own test (amazon-mwaa-docker-images, user_requirements.py) is a plain search for
# "-c " or "--constraint " on every line, comments included; "-cFILE" and "--constraint=FILE"
# are the same option to pip, so they count too.
_HAS_CONSTRAINT = re.compile(r"(?:^|[\s#])(?:-c\s*\S|--constraint[\s=])")
_COMMENT = re.compile(r"(^|\s+)#.*$")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
# PEP 508 direct reference: name[extras] @ url [; marker]
_DIRECT_REFERENCE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*\s*(?:\[[^\]]*\])?)\s*@\s*(?P<url>[^\s;]+)(?P<rest>.*)$"
)
_REMOTE = re.compile(r"^(?:https?|(?:git|hg|svn|bzr)\+(?:https?|ssh))://", re.IGNORECASE)


class RequirementsError(Exception):
    """A requirements.txt Airdock will not install; nothing was changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class PreparedRequirements:
    requirements: str  # the text the installer reads with -r
    constraint_files: list[Path] = field(default_factory=list)  # the user's own constraints
    has_user_constraints: bool = False  # True: install without the default constraints
    extra_args: list[str] = field(default_factory=list)  # installer flags the file asked for
    notes: list[str] = field(default_factory=list)  # what was rewritten, for the install log
    inputs: list[Path] = field(default_factory=list)  # local files/folders the result depends on


def decode(data: bytes) -> str:
    """Text of a requirements file: UTF-8/16/32 with a byte-order mark, else UTF-8 (as pip)."""
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequirementsError(
            INVALID_REQUIREMENTS,
            f"requirements.txt is not valid UTF-8 (byte {error.start}); save it as UTF-8.",
        ) from None


def has_constraints_line(text: str) -> bool:
    return any(_HAS_CONSTRAINT.search(line) for line in text.splitlines())


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) with comments stripped and backslash continuations joined."""
    lines: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = _COMMENT.sub("", raw) if "#" in raw else raw
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        line, pending = (pending + line).strip(), ""
        if line:
            lines.append((start, line))
    if pending.strip():
        lines.append((start, pending.strip()))
    return lines


class _Reader:
    """One pass over a requirements file and the plugin files it includes."""

    def __init__(self, airflow_version: str, plugins_dir: Path | None, locks_dir: Path) -> None:
        self.airflow_version = airflow_version
        self.plugins_dir = plugins_dir.resolve() if plugins_dir else None
        self.locks_dir = locks_dir
        self.out = PreparedRequirements(requirements="")
        self.lines: list[str] = []

    def read(self, text: str, source: str, depth: int = 0) -> None:
        for number, line in logical_lines(text):
            where = f"{source}, line {number}"
            if line.startswith("-"):
                self._option(line, where, depth)
            else:
                self.lines.append(self._requirement(line, where))

    # -- options ---------------------------------------------------------------------------

    def _option(self, line: str, where: str, depth: int) -> None:
        name, value = _split_option(line, where)
        if name in ("-c", "--constraint"):
            self.out.constraint_files.append(self._constraint(value, where))
        elif name in ("-r", "--requirement"):
            if depth >= MAX_NESTING:
                raise RequirementsError(INVALID_REQUIREMENTS, f"{where}: -r nested too deeply")
            path = self._plugins_path(value, where, "requirements file")
            self.out.inputs.append(path)
            self.read(_read_text(path, where), value, depth + 1)
        elif name in ("-e", "--editable"):
            raise RequirementsError(
                INVALID_REQUIREMENTS,
                f"{where}: editable installs ({line!r}) are not supported; build a wheel, put it "
                f"in plugins.zip and use --find-links {MWAA_PLUGINS_DIR}.",
            )
        elif name in ("-i", "--index-url", "--extra-index-url"):
            if not re.match(r"^https?://", value or "", re.I):
                raise RequirementsError(
                    INVALID_REQUIREMENTS, f"{where}: {name} needs an http(s) URL, got {value!r}"
                )
            self.lines.append(f"{name} {value}")
        elif name in ("-f", "--find-links"):
            if re.match(r"^https?://", value or "", re.I):
                self.lines.append(f"{name} {value}")
            else:
                path = self._plugins_path(value, where, "--find-links folder")
                self.out.inputs.append(path)
                self.lines.append(f"--find-links {path}")
        elif name == "--pre":
            self.out.extra_args.append("--prerelease=allow")
        elif name == "--trusted-host":
            self.out.extra_args += ["--allow-insecure-host", value or ""]
        else:
            # Options uv understands in a file (--no-index, --only-binary, ...) or warns about.
            self.lines.append(line)

    def _constraint(self, value: str | None, where: str) -> Path:
        value = value or ""
        match = AIRFLOW_CONSTRAINTS_URL.match(value)
        if match:
            version = match["version"]
            try:
                lock = lock_for(version, self.locks_dir)
            except UnsupportedAirflowVersion:
                raise RequirementsError(
                    UNSUPPORTED_CONSTRAINTS,
                    f"{where}: the constraints file {value} cannot be downloaded here and Airdock "
                    f"has no local copy for Airflow {version} (it has: "
                    f"{', '.join(supported_versions(self.locks_dir))}). Use the constraints URL "
                    f"of Airflow {self.airflow_version} or remove the -c line.",
                ) from None
            note = f"{where}: constraints {value} -> Airdock's lock for Airflow {version}"
            if match["python"] != lock.python:
                note += f" (resolved for Python {lock.python}, not {match['python']})"
            if version != self.airflow_version:
                note += f"; this environment runs Airflow {self.airflow_version}"
            self.out.notes.append(note)
            return lock.path
        if _URL.match(value):
            raise RequirementsError(
                UNSUPPORTED_CONSTRAINTS,
                f"{where}: the constraints file {value} cannot be downloaded (Airdock installs "
                "requirements without access to arbitrary URLs). Use the Airflow constraints URL "
                f"for your version, or put the file in plugins.zip and write "
                f"-c {MWAA_PLUGINS_DIR}/<file>.",
            )
        path = self._plugins_path(value, where, "constraints file")
        _check_plain_constraints(_read_text(path, where), value)
        self.out.inputs.append(path)
        return path

    # -- requirement lines -----------------------------------------------------------------

    def _requirement(self, line: str, where: str) -> str:
        spec, _, options = line.partition(" --")
        options = f" --{options}" if options else ""
        direct = _DIRECT_REFERENCE.match(spec)
        if direct:
            name, url = direct["name"], direct["url"]
            if url.lower().startswith("file:"):
                local = re.sub(r"^file:(//)?", "", url, flags=re.IGNORECASE)
                path = self._plugins_path(local, where, "file")
                self.out.inputs.append(path)
                return f"{name} @ {path.as_uri()}{direct['rest']}{options}"
            if not _REMOTE.match(url):
                raise RequirementsError(INVALID_REQUIREMENTS, f"{where}: unsupported URL {url!r}")
            return line
        if _REMOTE.match(spec):
            return line  # VCS or archive URL; needs network at install time
        if _URL.match(spec):
            raise RequirementsError(INVALID_REQUIREMENTS, f"{where}: unsupported URL {spec!r}")
        if _looks_like_path(spec):
            path = self._plugins_path(spec.split(";")[0].strip(), where, "package file")
            self.out.inputs.append(path)
            return f"{path}{options}"
        return line

    def _plugins_path(self, value: str | None, where: str, what: str) -> Path:
        value = (value or "").strip()
        prefix = MWAA_PLUGINS_DIR.rstrip("/")
        if not (value == prefix or value.startswith(prefix + "/")):
            raise RequirementsError(
                INVALID_REQUIREMENTS,
                f"{where}: the {what} {value!r} is a local path; only files from plugins.zip, "
                f"written as {prefix}/..., can be used.",
            )
        if self.plugins_dir is None:
            raise RequirementsError(
                INVALID_REQUIREMENTS, f"{where}: {value} needs plugins.zip, and none is configured"
            )
        path = (self.plugins_dir / value[len(prefix) :].lstrip("/")).resolve()
        if not path.is_relative_to(self.plugins_dir):
            raise RequirementsError(INVALID_REQUIREMENTS, f"{where}: {value} leaves plugins.zip")
        if not path.exists():
            raise RequirementsError(
                INVALID_REQUIREMENTS, f"{where}: {value} is not in the environment's plugins.zip"
            )
        return path


def prepare_requirements(
    data: bytes | None,
    *,
    airflow_version: str,
    plugins_dir: Path | None = None,
    locks_dir: Path = LOCKS_DIR,
) -> PreparedRequirements:
    """Check and rewrite a requirements.txt; raises RequirementsError with an MWAA-style code."""
    text = decode(data or b"")
    reader = _Reader(airflow_version, plugins_dir, locks_dir)
    reader.read(text, "requirements.txt")
    out = reader.out
    out.requirements = "".join(f"{line}\n" for line in reader.lines)
    out.has_user_constraints = has_constraints_line(text)
    if out.has_user_constraints and not out.constraint_files:
        out.notes.append(
            "requirements.txt mentions -c/--constraint only in a comment: installing without "
            "the default Airflow constraints, as MWAA does."
        )
    return out


def _split_option(line: str, where: str) -> tuple[str, str | None]:
    try:
        tokens = shlex.split(line)
    except ValueError as error:
        raise RequirementsError(INVALID_REQUIREMENTS, f"{where}: {error}") from None
    first = tokens[0]
    if first.startswith("--") and "=" in first:
        name, value = first.split("=", 1)
        return name, value
    if re.match(r"^-[a-zA-Z]\S", first):  # -cFILE, -rFILE
        return first[:2], first[2:]
    return first, tokens[1] if len(tokens) > 1 else None


def _looks_like_path(spec: str) -> bool:
    head = spec.split(";")[0].strip()
    return (
        head.startswith((".", "/", "~"))
        or "/" in head
        or "\\" in head
        or head.endswith((".whl", ".tar.gz", ".zip", ".tar.bz2"))
    )


def _read_text(path: Path, where: str) -> str:
    if not path.is_file():
        raise RequirementsError(INVALID_REQUIREMENTS, f"{where}: {path.name} is not a file")
    return decode(path.read_bytes())


def _check_plain_constraints(text: str, source: str) -> None:
    """A constraints file from plugins.zip may only pin packages: no includes, no indexes."""
    for number, line in logical_lines(text):
        if line.startswith("-") and not line.startswith("--hash"):
            raise RequirementsError(
                INVALID_REQUIREMENTS,
                f"{source}, line {number}: a constraints file may only pin packages ({line!r})",
            )
