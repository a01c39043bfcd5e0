"""`airdock env ...`: work on one environment's contents on this host, or wait for it.

`wait` asks the running server (controlplane.cli_wait). The other commands act directly on the
data dir of a server on this machine (its store, its workspaces and the AWS endpoint it uses).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from controlplane import cli_open, cli_wait
from controlplane.cli_common import add_data_dir, add_database_url
from controlplane.logtail import follow_logs
from controlplane.runtime import open_local
from controlplane.server_link import ServerUnreachable, ensure_up, recorded_url
from environments.errors import AirdockError


def register(sub: argparse._SubParsersAction) -> None:
    env = sub.add_parser("env", help="an environment's DAGs and contents on this host")
    commands = env.add_subparsers(dest="env_command", required=True)
    for name, helptext, func in (
        ("sync", "sync the environment's DAGs from S3 now", _sync),
        ("dags", "show the environment's DAG files, DAG ids and errors", _dags),
        ("status", "show the status of the environment's Airflow components", _status),
    ):
        parser = commands.add_parser(name, help=helptext)
        parser.add_argument("name", help="environment name")
        add_data_dir(parser, "data dir of the server whose environment it is")
        add_database_url(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(func=func)
    logs = commands.add_parser("logs", help="print the output of the environment's components")
    logs.add_argument("name", help="environment name")
    add_data_dir(logs, "data dir of the server whose environment it is")
    logs.add_argument(
        "--component",
        help="only this component: a name (scheduler-1) or a kind (scheduler, worker, ...)",
    )
    logs.add_argument("--lines", type=int, default=50, help="lines of each log to start with")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    logs.set_defaults(func=_logs)
    cli_wait.register(commands)
    cli_open.register(commands)


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


# The runtime rewrites its report every second while it runs.
STALE_AFTER_SECONDS = 15.0


def _status(args: argparse.Namespace) -> int:
    local = open_local(args.data_dir.resolve(), args.database_url)
    try:
        row = local.store.read_environment(args.name)
        if row is None:
            print(f"error: Environment {args.name} not found.")
            return 2
        runtime = local.services.workspace(args.name).read_json("runtime.json", {})
    finally:
        local.close()
    fresh = time.time() - float(runtime.get("updated_at") or 0) <= STALE_AFTER_SECONDS
    if runtime and not fresh and runtime.get("components"):
        runtime["healthy"] = False
        runtime["reason"] = "no recent report from the runtime: is `airdock serve` running?"
        for component in runtime["components"].values():
            component["state"] = "unknown"
    report = {
        "name": args.name,
        "status": row.status,
        "healthy": runtime.get("healthy", False),
        "reason": runtime.get("reason", "Airflow is not running on this host"),
        "components": runtime.get("components", {}),
        "zygote": runtime.get("zygote") if fresh else None,
        "workers": runtime.get("workers", 0),
        "workers_wanted": runtime.get("workers_wanted", 0),
        "remote_workers": runtime.get("remote_workers", []),
        "api_port": runtime.get("api_port"),
        "updated_at": runtime.get("updated_at"),
        "queue": (runtime.get("autoscaling") or {}).get("queue", {}),
        "autoscaling": _scaling_summary(runtime.get("autoscaling") or {}),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.name}: {row.status}, {report['workers']} of {report['workers_wanted']} workers")
    if report["reason"]:
        print(f"  {report['reason']}")
    _print_scaling(report)
    _print_zygote(report)
    for host in report["remote_workers"]:
        ready = f"{host['ready']} of {host['workers']} workers ready"
        seen = f"seen {host['seen_seconds_ago']} s ago"
        print(f"  on {host['host']}: {ready}, {host['concurrency']} tasks each ({seen})")
    header = ("COMPONENT", "STATE", "PID", "RESTARTS", "LAST ERROR")
    rows = [
        (name, c["state"], str(c.get("pid") or "-"), str(c.get("restarts", 0)),
         (c.get("last_error") or "-")[:80])
        for name, c in report["components"].items()
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for line in [header, *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(line, [*widths, 0], strict=True)).rstrip())
    return 0


def _print_zygote(report: dict) -> None:
    zygote = report["zygote"]
    if zygote is None:
        return
    forked = [name for name, c in report["components"].items() if c.get("forked")]
    print(
        f"  zygote: pid {zygote['pid']} (started {zygote['starts']} time(s)); "
        f"forked: {', '.join(forked) or 'none'}"
    )


def _scaling_summary(scaling: dict) -> dict:
    """What `env status` says of autoscaling: the load, the current decision, the last change."""
    return {
        "load": scaling.get("load"),
        "decision": scaling.get("decision"),
        "last_change": scaling.get("last_change"),
    }


def _print_scaling(report: dict) -> None:
    queue, scaling = report["queue"], report["autoscaling"]
    if queue:
        print(f"  queue: {queue.get('waiting', 0)} waiting, {queue.get('in_flight', 0)} in flight")
    if scaling.get("decision"):
        print(f"  autoscaling: {scaling['decision']}")
    change = scaling.get("last_change")
    if change:
        when = time.strftime("%H:%M:%S", time.localtime(change["at"]))
        print(
            f"  last scaling: {when} {change['workers_from']} -> {change['workers_to']} workers"
            f" ({change['reason']})"
        )


def _logs(args: argparse.Namespace) -> int:
    folder = args.data_dir.resolve() / "environments" / args.name / "state" / "logs"
    if not folder.is_dir():
        print(f"error: no Airflow logs for {args.name} in {args.data_dir}")
        return 2
    return follow_logs(folder, component=args.component, lines=args.lines, follow=args.follow)


def error_summary(error: str) -> str:
    """The line of an error that says what went wrong: a traceback's last line, not its
    first ("Traceback (most recent call last):")."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    return lines[-1] if lines else "-"
