"""`airflow <command>` on behalf of a CLI-token holder: MWAA's allow-list, then a sandboxed run.

The runtime records how to run the Airflow CLI of each environment it starts (LAUNCH_FILE in
the environment's private state: the virtualenv's `airflow` and the web server's variables);
`run_command` uses that record, confined like every Airflow component
(environments.airflow.sandbox), and hands back what the command wrote on each stream.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass

from environments.airflow import sandbox
from environments.plumbing import processes
from environments.workspace import Workspace

LAUNCH_FILE = "cli-launch.json"
TIMEOUT_SECONDS = 120.0
MAX_OUTPUT_BYTES = 8 * 1024 * 1024

# The commands MWAA's CLI endpoint accepts (its user guide's "Apache Airflow CLI command
# reference"), as (group, subcommand); a group alone allows every subcommand of it.
_COMMON = frozenset(
    {
        ("cheat-sheet",),
        ("version",),
        ("connections", "add"),
        ("connections", "delete"),
        ("dags", "delete"),
        ("dags", "list"),
        ("dags", "list-jobs"),
        ("dags", "list-runs"),
        ("dags", "next-execution"),
        ("dags", "pause"),
        ("dags", "report"),
        ("dags", "show"),
        ("dags", "state"),
        ("dags", "test"),
        ("dags", "trigger"),
        ("dags", "unpause"),
        ("providers", "behaviours"),
        ("providers", "get"),
        ("providers", "hooks"),
        ("providers", "links"),
        ("providers", "list"),
        ("providers", "widgets"),
        ("roles", "create"),
        ("roles", "list"),
        ("tasks", "clear"),
        ("tasks", "failed-deps"),
        ("tasks", "list"),
        ("tasks", "render"),
        ("tasks", "state"),
        ("tasks", "states-for-dag-run"),
        ("tasks", "test"),
        ("variables", "delete"),
        ("variables", "get"),
        ("variables", "set"),
        ("variables", "list"),
        ("pools", "set"),
        ("pools", "get"),
        ("pools", "list"),
        ("pools", "delete"),
    }
)
# Airflow 3 moved backfills to a group of their own.
ALLOWED = {2: _COMMON | {("dags", "backfill")}, 3: _COMMON | {("backfill", "create")}}


class CommandRefused(Exception):
    """The command is not one MWAA runs (or is not a command at all)."""


class NotRunning(Exception):
    """The environment's Airflow has never been started by this server."""


@dataclass(frozen=True)
class CliResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


def parse(text: str, airflow_version: str) -> list[str]:
    """The arguments of an allowed command (without `airflow`), else CommandRefused."""
    try:
        args = shlex.split(text)
    except ValueError as err:
        raise CommandRefused(f"The command cannot be parsed: {err}.") from None
    if args[:1] == ["airflow"]:
        args = args[1:]
    if not args:
        raise CommandRefused("No command was given.")
    allowed = ALLOWED[3 if int(airflow_version.split(".")[0]) >= 3 else 2]
    if (args[0],) not in allowed and tuple(args[:2]) not in allowed:
        shown = " ".join(args[:2])
        raise CommandRefused(f"airflow {shown} is not a supported command.")
    return args


def launch_record(workspace: Workspace) -> dict:
    record = workspace.read_json(LAUNCH_FILE, None)
    if not record:
        raise NotRunning(f"Apache Airflow of environment {workspace.root.name} is not running.")
    return record


def run_command(
    workspace: Workspace, args: list[str], *, timeout: float = TIMEOUT_SECONDS
) -> CliResult:
    """Run `airflow *args` as the environment (never as Airdock), with no input."""
    record = launch_record(workspace)
    launch = sandbox.confine(
        workspace,
        [record["airflow"], *args],
        record["env"],
        workspace.home,
        writable=[workspace.home],
    )
    process = processes.spawn(
        launch.argv,
        env=launch.env,
        cwd=launch.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **launch.identity(),
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        processes.kill_group(process)
        stdout, stderr = process.communicate()
        stderr += f"\nThe command did not finish within {timeout:.0f} seconds.\n".encode()
    return CliResult(stdout[-MAX_OUTPUT_BYTES:], stderr[-MAX_OUTPUT_BYTES:], process.returncode)


def airflow_version(workspace: Workspace) -> str:
    return str(launch_record(workspace)["airflow_version"])
