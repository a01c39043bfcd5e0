"""Flags the `airdock` subcommands share, and help that always states a flag's default.

`--data-dir` and `--database-url` fall back to AIRDOCK_DATA_DIR and AIRDOCK_DATABASE_URL, as
`airdock serve` does, so one export points every command at the same server.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DATA_DIR_ENV = "AIRDOCK_DATA_DIR"
DATABASE_URL_ENV = "AIRDOCK_DATABASE_URL"


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or ".airdock")


def add_data_dir(parser: argparse.ArgumentParser, what: str, *, default: bool = True) -> None:
    """`--data-dir DIR`; with default=False it stays None when not given (callers that must
    tell "not given" apart use default_data_dir() themselves)."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir() if default else None,
        metavar="DIR",
        help=f"{what} (default: .airdock; env {DATA_DIR_ENV})",
    )


def add_database_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=os.environ.get(DATABASE_URL_ENV) or None,
        metavar="URL",
        help=f"the server's store, if not SQLite in the data dir (default: SQLite in the data "
        f"dir; env {DATABASE_URL_ENV})",
    )


def state_defaults(parser: argparse.ArgumentParser) -> None:
    """Append "(default: ...)" to the help of every flag below `parser` that does not say its
    default yet, so no flag leaves its default unstated."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                state_defaults(child)
            continue
        if not action.option_strings or action.required or action.help in (None, argparse.SUPPRESS):
            continue
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        if "default" in action.help.lower():
            continue
        action.help = f"{action.help} (default: {_shown(action)})"


def _shown(action: argparse.Action) -> str:
    if isinstance(action, argparse._StoreTrueAction):
        return "off"
    if isinstance(action, argparse._AppendAction) and not action.default:
        return "none"
    if action.default is None:
        return "none"
    return str(action.default).replace("%", "%%")
