"""`airdock iam ...`: access keys for the users of the IAM config, and the policy simulator.

Key commands work on a server's data dir directly (the encrypted key store the running server
reads), so a minted key works at once, without a restart. Their output follows the matching
AWS CLI commands (`aws iam create-access-key`, `aws sts assume-role`, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

import iam
from controlplane.cli_common import add_data_dir, add_database_url
from controlplane.clientconfig import read_endpoints
from controlplane.iam_config import IamConfigError, read_config, recorded_config_source
from controlplane.keystore import KeyStore, KeyStoreError, MintedKey
from controlplane.settings import Settings
from environments.store import Store

_SIMULATE_EPILOG = (
    iam.CASE_FORMAT
    + """
Example: airdock iam simulate --cases infra/simulate-example.json --check

Prints one JSON line per case: {"id": ..., "decision": "Allow"|"ExplicitDeny"|"ImplicitDeny"},
or {"id": ..., "error": "..."} for a case that cannot be evaluated (e.g. a malformed policy).
Exit status: 0 every case was decided (and, with --check, matched its "expected");
1 some case could not be evaluated or (with --check) did not match; 2 the file could not be read.
"""
)


class _Failure(Exception):
    """A user-facing error: printed to stderr, then exit with ``status``."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("iam", help="access keys and the IAM policy simulator")
    commands = parser.add_subparsers(dest="iam_command", required=True)

    create = commands.add_parser(
        "create-access-key", help="mint a long-term access key for a user of the IAM config"
    )
    create.add_argument("user", help="a user defined in the IAM config")
    _key_options(create, config=True)
    create.set_defaults(func=partial(_run, _do_create_access_key))

    session = commands.add_parser(
        "create-role-session",
        help="mint temporary credentials (with a session token) for a role of the IAM config",
    )
    session.add_argument("role", help="a role defined in the IAM config")
    session.add_argument("--session-name", default="airdock-cli", help="default airdock-cli")
    session.add_argument("--duration-seconds", type=int, default=3600, help="900-43200")
    _key_options(session, config=True)
    session.set_defaults(func=partial(_run, _do_create_role_session))

    listing = commands.add_parser("list-access-keys", help="list minted access keys")
    listing.add_argument("user", nargs="?", help="only this user's keys (default: all)")
    _key_options(listing, config=False)
    listing.set_defaults(func=partial(_run, _do_list_access_keys))

    delete = commands.add_parser("delete-access-key", help="delete a minted access key")
    delete.add_argument("access_key_id")
    _key_options(delete, config=False)
    delete.set_defaults(func=partial(_run, _do_delete_access_key))

    simulate = commands.add_parser(
        "simulate",
        help="evaluate policy test cases (a JSON array of cases; see --help for the format)",
        epilog=_SIMULATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    simulate.add_argument("--cases", type=Path, required=True, help="JSON array of cases")
    simulate.add_argument(
        "--check", action="store_true", help="also compare with each case's 'expected'"
    )
    simulate.set_defaults(func=_simulate)


def _key_options(parser: argparse.ArgumentParser, *, config: bool) -> None:
    add_data_dir(parser, "data dir of the server whose keys these are")
    add_database_url(parser)
    if config:
        parser.add_argument(
            "--iam-config",
            type=Path,
            help="the IAM config (default: the one the server in --data-dir was started with)",
        )


def _run(func, args: argparse.Namespace) -> int:
    try:
        return func(args)
    except _Failure as err:
        print(f"airdock iam {args.iam_command}: {err}", file=sys.stderr)
        return err.status
    except (KeyStoreError, IamConfigError) as err:
        print(f"airdock iam {args.iam_command}: {err}", file=sys.stderr)
        return 2


def _print(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, indent=4))


# --- key commands ---------------------------------------------------------------------------


def _store(args: argparse.Namespace) -> KeyStore:
    data_dir = args.data_dir.resolve()
    if not data_dir.is_dir():
        raise _Failure(f"{data_dir} is not a directory (the --data-dir of `airdock serve`)", 2)
    store = Store(Settings(data_dir=data_dir, database_url=args.database_url).db_url)
    store.create_schema()
    keys = KeyStore(data_dir, store)
    keys.ensure_key()
    keys.import_legacy_file()
    return keys


def _directory(args: argparse.Namespace) -> iam.Directory:
    data_dir = args.data_dir.resolve()
    path = args.iam_config or recorded_config_source(data_dir)
    if path is None:
        raise _Failure(
            "no IAM config: pass --iam-config, or start `airdock serve --iam-config FILE` "
            "with this data dir first",
            2,
        )
    return read_config(path, _account_id(data_dir))


def _account_id(data_dir: Path) -> str:
    try:
        return read_endpoints(data_dir).account_id
    except (OSError, ValueError):
        return "123456789012"  # the server's default


def _do_create_access_key(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.user not in _directory(args).users:
        raise _Failure(f"NoSuchEntity: the user with name {args.user} cannot be found.")
    key = store.mint_user_key(args.user)
    _print(
        {
            "AccessKey": {
                "UserName": args.user,
                "AccessKeyId": key.access_key_id,
                "Status": "Active",
                "SecretAccessKey": key.secret_access_key,
                "CreateDate": key.created,
            }
        }
    )
    return 0


def _do_create_role_session(args: argparse.Namespace) -> int:
    store = _store(args)
    directory = _directory(args)
    role = directory.roles.get(args.role)
    if role is None:
        raise _Failure(f"NoSuchEntity: the role with name {args.role} cannot be found.")
    key = store.mint_session(args.role, args.session_name, args.duration_seconds)
    _print(
        {
            "Credentials": {
                "AccessKeyId": key.access_key_id,
                "SecretAccessKey": key.secret_access_key,
                "SessionToken": key.session_token,
                "Expiration": key.expires,
            },
            "AssumedRoleUser": {
                "AssumedRoleId": f"{role.role_id}:{args.session_name}",
                "Arn": f"arn:aws:sts::{directory.account_id}:assumed-role/"
                f"{role.name}/{args.session_name}",
            },
        }
    )
    return 0


def _metadata(key: MintedKey) -> dict[str, str]:
    entry = {"AccessKeyId": key.access_key_id, "Status": "Active", "CreateDate": key.created}
    if key.user:
        entry["UserName"] = key.user
    else:
        entry["RoleName"] = key.role or ""
        entry["SessionName"] = key.session_name or ""
        entry["Expiration"] = key.expires or ""
    return entry


def _do_list_access_keys(args: argparse.Namespace) -> int:
    keys = _store(args).read()
    if args.user:
        keys = [k for k in keys if k.user == args.user]
    _print({"AccessKeyMetadata": [_metadata(k) for k in keys]})
    return 0


def _do_delete_access_key(args: argparse.Namespace) -> int:
    if not _store(args).delete(args.access_key_id):
        raise _Failure(
            f"NoSuchEntity: the access key with id {args.access_key_id} cannot be found."
        )
    return 0


# --- simulate -------------------------------------------------------------------------------


def _simulate(args: argparse.Namespace) -> int:
    try:
        cases = iam.load_cases(args.cases)
    except (OSError, ValueError) as err:
        print(f"airdock iam simulate: {err}", file=sys.stderr)
        return 2
    troubled = 0
    for case in cases:
        case_id = str(case.get("id", "?")) if isinstance(case, dict) else "?"
        try:
            if not isinstance(case, dict):
                raise ValueError("a case must be a JSON object")
            decision = iam.decide_case(case, base=args.cases.parent).value
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            # PolicyError and CaseError are ValueErrors: report the case and keep going.
            print(json.dumps({"id": case_id, "error": str(err)}), flush=True)
            troubled += 1
            continue
        print(json.dumps({"id": case_id, "decision": decision}), flush=True)
        expected = case.get("expected")
        if args.check and expected is not None and expected != decision:
            print(f"case {case_id}: expected {expected}, got {decision}", file=sys.stderr)
            troubled += 1
    return 1 if troubled else 0
