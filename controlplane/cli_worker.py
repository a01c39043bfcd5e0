"""`airdock worker NAME` and `airdock worker-join NAME`: Celery workers on another host.

On the control plane's host, `airdock worker-join NAME --output FILE` writes the join file
(the metadata database's login, the secrets Airflow's processes share, the execution API's
address). On the worker host, `airdock worker NAME --join FILE` joins the environment with
the operator's own AWS credentials (a profile, or the usual AWS_* variables) and runs its
workers until stopped.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from controlplane.cli_common import add_data_dir
from controlplane.doors.certificates import CA_CERT, CA_FOLDER
from environments.airflow.runtime.join import CA_FIELD, JOIN_FILE, JoinError, read_join
from environments.fleet.setup import WorkerOptions, WorkerSetupError
from environments.fleet.worker_host import STOP_GRACE, WorkerHost
from environments.plumbing.files import atomic_write


def register(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser(
        "worker", help="run Celery workers for an environment on this host (another machine)"
    )
    worker.add_argument("name", help="environment name")
    worker.add_argument(
        "--join",
        type=Path,
        required=True,
        metavar="FILE",
        help="the join file written by `airdock worker-join` on the server's host",
    )
    worker.add_argument("--profile", help="AWS profile of the operator (default: the usual chain)")
    worker.add_argument("--region", help="AWS region (default: the profile's)")
    worker.add_argument(
        "--endpoint",
        metavar="URL",
        help="Airdock's MWAA API (default: the profile's mwaa endpoint_url)",
    )
    worker.add_argument(
        "--aws-endpoint",
        metavar="URL",
        help="the environment's AWS (default: the profile's; none for real AWS)",
    )
    worker.add_argument(
        "--airflow-database-url",
        metavar="URL",
        help="the environment's Airflow metadata database as this host reaches it "
        "(default: the join file's)",
    )
    worker.add_argument(
        "--execution-api-url",
        metavar="URL",
        help="Airflow 3's execution API as this host reaches it (default: the join file's)",
    )
    worker.add_argument(
        "--concurrency", type=int, help="tasks per worker (default: the environment class's)"
    )
    worker.add_argument("--workers", type=int, default=1, help="Celery workers to run (default 1)")
    worker.add_argument(
        "--work-dir",
        type=Path,
        default=Path(".airdock-worker"),
        metavar="DIR",
        help="DAGs, virtualenv and logs of this host (default .airdock-worker)",
    )
    worker.add_argument(
        "--uv-cache",
        type=Path,
        metavar="DIR",
        help="uv's package cache (default: ~/.cache/airdock/uv)",
    )
    worker.add_argument("--host-id", help="this host's name among the workers (default: hostname)")
    worker.add_argument(
        "--stop-grace",
        type=float,
        default=STOP_GRACE,
        help=f"seconds running tasks get at stop (default {STOP_GRACE:.0f})",
    )
    worker.add_argument(
        "--sync-seconds",
        type=float,
        default=WorkerOptions.sync_seconds,
        help="seconds between passes of the DAG mirror; a task whose DAG file is not here yet "
        f"gets one at once (default {WorkerOptions.sync_seconds:g})",
    )
    worker.set_defaults(func=_worker)  # fmt: skip

    join = sub.add_parser("worker-join", help="write the join file `airdock worker` needs")
    join.add_argument("name", help="environment name")
    add_data_dir(join, "data dir of the server whose environment it is")
    join.add_argument("--output", type=Path, metavar="FILE", help="write here (default: stdout)")
    join.set_defaults(func=_worker_join)


def _worker_join(args: argparse.Namespace) -> int:
    path = args.data_dir.resolve() / "environments" / args.name / "state" / JOIN_FILE
    try:
        bundle = read_join(path)
    except JoinError as err:
        print(f"airdock worker-join: {err} (is the environment's Airflow running here?)",
              file=sys.stderr)  # fmt: skip
        return 2
    # The door the execution API is reached through presents a certificate of the data
    # dir's own CA; the worker host trusts it for that (it is public, like endpoints.json's).
    authority = args.data_dir.resolve() / CA_FOLDER / CA_CERT
    if bundle["execution_api_url"].startswith("https://") and authority.is_file():
        bundle[CA_FIELD] = authority.read_text()
    text = json.dumps(bundle, indent=2) + "\n"
    if args.output:
        atomic_write(args.output, text, mode=0o600)
    else:
        sys.stdout.write(text)
    return 0


def _worker(args: argparse.Namespace) -> int:
    if args.workers < 1 or (args.concurrency is not None and args.concurrency < 1):
        print("airdock worker: --workers and --concurrency must be at least 1", file=sys.stderr)
        return 2
    if not args.sync_seconds > 0:
        print("airdock worker: --sync-seconds must be more than 0", file=sys.stderr)
        return 2
    try:
        join = read_join(args.join)
    except JoinError as err:
        print(f"airdock worker: {err}", file=sys.stderr)
        return 2
    if join["environment"] != args.name:
        print(f"airdock worker: the join file is for {join['environment']}, not {args.name}",
              file=sys.stderr)  # fmt: skip
        return 2
    options = WorkerOptions(
        name=args.name,
        join=join,
        work_dir=args.work_dir.resolve(),
        uv_cache=(args.uv_cache or Path.home() / ".cache" / "airdock" / "uv").resolve(),
        profile=args.profile,
        region=args.region,
        mwaa_endpoint=args.endpoint,
        aws_endpoint=args.aws_endpoint,
        database_url=args.airflow_database_url,
        execution_api_url=args.execution_api_url,
        concurrency=args.concurrency,
        workers=args.workers,
        sync_seconds=args.sync_seconds,
        **({"host_id": args.host_id} if args.host_id else {}),
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        return WorkerHost(options, stop_grace=args.stop_grace).run(stop)
    except WorkerSetupError as err:
        print(f"airdock worker: {err}", file=sys.stderr)
        return 1
