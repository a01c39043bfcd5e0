"""Every `airdock` flag states its default in --help; the shared flags name their AIRDOCK_*
variable and honour it; bad values are refused with the choices."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.cli import build_parser, main


def flags(parser: argparse.ArgumentParser, path: str = "airdock") -> Iterator[tuple]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from flags(child, f"{path} {name}")
        elif action.option_strings and not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_flag_states_its_default():
    missing = [
        f"{path} {action.option_strings[0]}"
        for path, action in flags(build_parser())
        if not action.required
        and action.help != argparse.SUPPRESS
        and "default" not in (action.help or "").lower()
    ]
    assert not missing, missing


def test_shared_flags_name_and_honour_their_variables(monkeypatch: pytest.MonkeyPatch):
    for path, action in flags(build_parser()):
        if action.dest == "data_dir" and path != "airdock serve":
            assert "env AIRDOCK_DATA_DIR" in action.help, path
        if action.dest == "database_url":
            assert "AIRDOCK_DATABASE_URL" in action.help, path
    monkeypatch.setenv("AIRDOCK_DATA_DIR", "/srv/airdock")
    monkeypatch.setenv("AIRDOCK_DATABASE_URL", "postgresql+psycopg://db/airdock")
    args = build_parser().parse_args(["env", "dags", "demo"])
    assert args.data_dir == Path("/srv/airdock")
    assert args.database_url == "postgresql+psycopg://db/airdock"
    assert build_parser().parse_args(["env", "wait", "demo"]).data_dir == Path("/srv/airdock")
    given = build_parser().parse_args(["env", "wait", "demo", "--data-dir", "here"])
    assert given.data_dir == Path("here")


def test_a_bad_log_level_is_refused_with_the_choices(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_:
        main(["--log-level", "foo", "env", "wait", "demo"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "'foo' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in err
    assert "Traceback" not in err
