"""The `airdock` command."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

from controlplane import cli_env, cli_iam, cli_infra, cli_worker
from controlplane.cli_common import state_defaults
from controlplane.options import SettingsError, add_arguments, from_arguments
from controlplane.settings import CommonSettings, Settings


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve", help="run the MWAA-compatible API, the reconciler and their supervisor"
    )
    add_arguments(serve, Settings)
    serve.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from controlplane.iam_config import IamConfigError
    from controlplane.serve import serve
    from controlplane.server.datadir import DataDirInUse

    try:
        settings = from_arguments(Settings, args, os.environ)
    except SettingsError as err:
        print(f"airdock serve: {err}", file=sys.stderr)
        return 2
    settings = dataclasses.replace(settings, data_dir=settings.data_dir.resolve())
    if not settings.auth_enabled:
        logging.getLogger("airdock").warning(
            "authentication is OFF: every caller acts as the admin (for benchmarks only)"
        )
    try:
        serve(settings)
    except IamConfigError as err:
        print(f"airdock serve: {err}", file=sys.stderr)
        return 2
    except DataDirInUse as err:
        print(f"airdock serve: {err}; stop it first or pick another --data-dir", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airdock", description=__doc__)
    add_arguments(parser, CommonSettings)
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    cli_env.register(sub)
    cli_iam.register(sub)
    cli_infra.register(sub)
    cli_worker.register(sub)
    state_defaults(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        common = from_arguments(CommonSettings, args, os.environ)
    except SettingsError as err:
        parser.error(str(err))
    logging.basicConfig(
        level=common.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
