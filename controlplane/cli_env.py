"""`airdock env ...`: work on one environment's contents on this host, or wait for it.

`wait` asks the running server (controlplane.cli_wait). The other commands act directly on the
data dir of a server on this machine (its store, its workspaces and the AWS endpoint it uses).
"""

from __future__ import annotations

import argparse
import json
import sys

from controlplane import cli_wait
from controlplane.cli_common import add_data_dir, add_database_url
from controlplane.runtime import open_local
from controlplane.server_link import ServerUnreachable, ensure_up, recorded_url
from environments.errors import AirdockError


def register(sub: argparse._SubParsersAction) -> None:
    env = sub.add_parser("env", help="an environment's DAGs and contents on this host")
    commands = env.add_subparsers(dest="env_command", required=True)
    for name, helptext, func in (
        ("sync", "sync the environment's DAGs from S3 now", _sync),
        ("dags", "show the environment's DAG files, DAG ids and errors", _dags),
    ):
        parser = commands.add_parser(name, help=helptext)
        parser.add_argument("name", help="environment name")
        add_data_dir(parser, "data dir of the server whose environment it is")
        add_database_url(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(func=func)
    cli_wait.register(commands)


def _sync(args: argparse.Namespace) -> int:
    try:
        # The DAGs come through the server's AWS endpoint, which runs only while it does.
        ensure_up(recorded_url(args.data_dir.resolve())[0])
    except ServerUnreachable as err:
        print(f"airdock env sync: {err.message}", file=sys.stderr)
        return 2
    local = open_local(args.data_dir.resolve(), args.database_url)
    try:
        report = local.dag_sync.sync_now(args.name)
    except AirdockError as err:
        print(f"error: {err.message}")
        return 2
    finally:
        local.close()
    summary = {
        "downloaded": report.downloaded,
        "deleted": report.deleted,
        "unchanged": report.unchanged,
        "refused": [{"key": k, "reason": r} for k, r in report.refused],
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{args.name}: {len(report.downloaded)} downloaded, {len(report.deleted)} deleted, "
            f"{report.unchanged} unchanged, {len(report.refused)} refused"
        )
        for key, reason in report.refused:
            print(f"  refused {key!r}: {reason}")
    return 0


def _dags(args: argparse.Namespace) -> int:
    local = open_local(args.data_dir.resolve(), args.database_url)
    try:
        if local.store.read_environment(args.name) is None:
            print(f"error: Environment {args.name} not found.")
            return 2
        report = local.services.workspace(args.name).read_json("dag-report.json", None)
    finally:
        local.close()
    if report is None:
        print(f"{args.name}: no DAG report yet (the environment's DAGs have not been parsed)")
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    rows = [
        (f["file"], ", ".join(f["dag_ids"]) or "-", "; ".join(map(error_summary, f["errors"])))
        for f in report["files"]
    ]
    header = ("FILE", "DAG IDS", "ERRORS")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(2)]
    for row in [header, *rows]:
        print(f"{row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  {row[2] or '-'}")
    return 0


def error_summary(error: str) -> str:
    """The line of an error that says what went wrong: a traceback's last line, not its
    first ("Traceback (most recent call last):")."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    return lines[-1] if lines else "-"
