"""The `airdock` command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from controlplane import cli_env, cli_iam, cli_infra
from controlplane.settings import Settings


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the MWAA-compatible API and the reconciler")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind; 0 picks a free one (default 8080)")
    serve.add_argument("--data-dir", type=Path, default=Path(".airdock"), help="state directory")
    aws = serve.add_mutually_exclusive_group()
    aws.add_argument("--aws-endpoint", help="AWS endpoint URL; omit to start an embedded AWS")
    aws.add_argument(
        "--real-aws",
        action="store_true",
        default=None,
        help="use AWS's own endpoints and the standard credential chain",
    )
    serve.add_argument("--region", help="region this endpoint serves (default us-east-1)")
    serve.add_argument("--account-id", help="account id in ARNs (default 123456789012)")
    serve.add_argument("--database-url", help="SQLAlchemy URL (default SQLite in the data dir)")
    serve.add_argument("--iam-config", type=Path, help="YAML file of users, groups and policies")
    serve.add_argument("--reconciler-workers", type=int, help="environments worked at once")
    serve.add_argument("--poll-interval", type=float, help="seconds between reconciler passes")
    serve.add_argument("--max-environments", type=int, help="environments per account/region")
    serve.add_argument(
        "--no-airflow",
        dest="airflow_venvs",
        action="store_false",
        default=None,
        help="provision without building Airflow virtualenvs (control-plane tests, benchmarks)",
    )
    serve.add_argument(
        "--dag-sync-interval", type=float, help="seconds between full DAG sync passes (default 5)"
    )
    # Hidden on purpose: only benchmarks compare against a server that checks nothing.
    serve.add_argument("--auth", choices=("on", "off"), default="on", help=argparse.SUPPRESS)
    serve.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from controlplane.iam_config import IamConfigError
    from controlplane.serve import serve

    values = Settings.defaults_from_env()
    for field in (
        "host",
        "port",
        "aws_endpoint",
        "real_aws",
        "region",
        "account_id",
        "database_url",
        "iam_config",
        "reconciler_workers",
        "poll_interval",
        "max_environments",
        "dag_sync_interval",
        "airflow_venvs",
    ):
        given = getattr(args, field)
        if given is not None:
            values[field] = given
    values["auth_enabled"] = args.auth == "on"
    if not values["auth_enabled"]:
        logging.getLogger("airdock").warning(
            "authentication is OFF: every caller acts as the admin (for benchmarks only)"
        )
    settings = Settings(data_dir=args.data_dir.resolve(), **values)  # type: ignore[arg-type]
    try:
        serve(settings)
    except IamConfigError as err:
        print(f"airdock serve: {err}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airdock", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    cli_env.register(sub)
    cli_iam.register(sub)
    cli_infra.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
