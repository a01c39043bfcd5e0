"""Settings declared once as dataclass fields, from which the command line is derived.

`option(...)` declares a field together with its help and its value check. From those
declarations come the flags, their help (which shows each default and AIRDOCK_* variable) and
the environment fallbacks. A flag wins over its variable, which wins over the default; a bad
value from either is refused with a message naming where it came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


class SettingsError(ValueError):
    """A value given for a setting cannot be used; the message names where it came from."""


# --- value checks: each takes the text as typed and raises ValueError saying what is wrong ---


def port(raw: str) -> int:
    value = integer(raw)
    if not 0 <= value <= 65535:
        raise ValueError(f"{raw!r} is not a port number (0-65535)")
    return value


def integer(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a whole number") from None


def at_least_one(raw: str) -> int:
    value = integer(raw)
    if value < 1:
        raise ValueError(f"{raw!r} is less than 1")
    return value


def seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number of seconds") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{raw!r} is not a positive number of seconds")
    return value


def region(raw: str) -> str:
    if not re.fullmatch(r"[a-z]{2}(-[a-z0-9]+)+-\d+", raw):
        raise ValueError(f"{raw!r} is not an AWS region name (e.g. us-east-1)")
    return raw


def account_id(raw: str) -> str:
    if not re.fullmatch(r"\d{12}", raw):
        raise ValueError(f"{raw!r} is not a 12-digit AWS account id")
    return raw


def http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{raw!r} is not an http:// or https:// URL")
    return raw


def database_url(raw: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(raw)
    except ArgumentError:
        raise ValueError(
            f"{raw!r} is not an SQLAlchemy database URL (e.g. postgresql+psycopg://user@db/airdock)"
        ) from None
    return raw


def postgres_url(raw: str) -> str:
    parts = urlsplit(raw)
    if not parts.scheme.startswith(("postgresql", "postgres")) or not parts.hostname:
        raise ValueError(
            f"{raw!r} is not a PostgreSQL URL (e.g. postgresql://user@db:5432/postgres)"
        )
    return raw


def text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("it is empty")
    return raw


def boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{raw!r} is neither true nor false")


def on_off(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered not in ("on", "off"):
        raise ValueError(f"{raw!r} is neither on nor off")
    return lowered == "on"


def one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(raw: str) -> str:
        if raw.upper() not in choices:
            raise ValueError(f"{raw!r} is not one of {', '.join(choices)}")
        return raw.upper()

    return check


# --- declarations ---------------------------------------------------------------------------


def option(
    default: Any,
    help: str,
    *,
    parse: Callable[[str], Any] = text,
    shown: str | None = None,
    metavar: str | None = None,
    flag: str | None = None,
    switch: bool | None = None,
    env: bool = True,
    hidden: bool = False,
) -> Any:
    """A settings field that is also a command-line flag and an AIRDOCK_* variable.

    `shown` is the default as help tells it when the value alone says too little; a `switch`
    is a flag without a value that sets the field to `switch`; a `hidden` flag is left out of
    help, and `env=False` gives it no environment variable.
    """
    meta = {
        "help": help,
        "parse": parse,
        "shown": shown,
        "metavar": metavar,
        "flag": flag,
        "switch": switch,
        "env": env,
        "hidden": hidden,
    }
    return dataclasses.field(default=default, metadata={"option": meta})


@dataclasses.dataclass(frozen=True)
class Option:
    """One declared setting, as the command line and the environment offer it."""

    field: str
    flag: str
    env: str | None
    help: str
    parse: Callable[[str], Any]
    shown: str
    metavar: str | None
    switch: bool | None
    hidden: bool

    def helptext(self) -> str:
        if self.hidden:
            return argparse.SUPPRESS
        where = ""
        if self.env:
            where = f"; env {self.env}"
            if self.switch is not None:
                where += "=true" if self.switch else "=false"
        return f"{self.help} (default: {self.shown}{where})".replace("%", "%%")


def options(settings: type) -> Iterator[Option]:
    for field in dataclasses.fields(settings):
        meta = field.metadata.get("option")
        if meta is None:
            continue
        switch = meta["switch"]
        shown = meta["shown"] or ("off" if switch is True else str(field.default))
        yield Option(
            field=field.name,
            flag=meta["flag"] or "--" + field.name.replace("_", "-"),
            env=f"AIRDOCK_{field.name.upper()}" if meta["env"] else None,
            help=meta["help"],
            parse=boolean if switch is not None else meta["parse"],
            shown=shown,
            metavar=meta["metavar"],
            switch=switch,
            hidden=meta["hidden"],
        )


def add_arguments(parser: argparse.ArgumentParser, settings: type) -> None:
    """One flag per declared option of the dataclass `settings`; every default is None, so
    `from_arguments` can tell a flag that was given from one that was not."""
    for opt in options(settings):
        if opt.switch is not None:
            parser.add_argument(
                opt.flag,
                dest=opt.field,
                action="store_const",
                const=opt.switch,
                default=None,
                help=opt.helptext(),
            )
        else:
            parser.add_argument(
                opt.flag,
                dest=opt.field,
                type=_for_argparse(opt.parse),
                default=None,
                metavar=opt.metavar,
                help=opt.helptext(),
            )


def _for_argparse(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(raw: str) -> Any:
        try:
            return parse(raw)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return convert


def from_arguments(settings: type[T], args: argparse.Namespace, environ: Mapping[str, str]) -> T:
    """An instance of `settings` from parsed flags, then AIRDOCK_* variables, then defaults."""
    values: dict[str, Any] = {}
    for opt in options(settings):
        given = getattr(args, opt.field, None)
        if given is not None:
            values[opt.field] = given
        elif opt.env and environ.get(opt.env):
            raw = environ[opt.env]
            try:
                values[opt.field] = opt.parse(raw)
            except ValueError as err:
                raise SettingsError(f"{opt.env} (for {opt.flag}): {err}") from None
    try:
        return settings(**values)
    except ValueError as err:
        raise SettingsError(str(err)) from None
