"""`airdock env wait NAME`: wait until an environment settles, showing what it is doing.

Exit codes (also in `airdock env wait --help` and the README):
  0  the environment reached a wanted status (gone, for --until DELETED)
  1  it settled in another status (e.g. CREATE_FAILED; the error is printed), or it does not
     exist
  2  bad usage, no server, or the server refused the request (e.g. AccessDeniedException)
  3  the timeout ran out first
"""

from __future__ import annotations

import argparse
import sys
import time
from urllib.parse import quote

from controlplane import waiting
from controlplane.cli_common import add_data_dir
from controlplane.server_link import ApiError, ServerLink, ServerUnreachable, connect, signed_get

EXIT_CODES = """exit codes:
  0  reached a wanted status (gone, for --until DELETED)
  1  settled in another status (the error is printed), or no such environment
  2  bad usage, no server answering, or the request was refused
  3  the timeout ran out first"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "wait",
        help="wait until an environment is AVAILABLE (or another status), showing progress",
        description="Wait until the environment settles in a wanted status, showing the "
        "reconciler's current step and the health of its components.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", help="environment name")
    parser.add_argument(
        "--until",
        action="append",
        choices=waiting.SETTLED,
        metavar="STATUS",
        help=f"a wanted status, one of {', '.join(waiting.SETTLED)}; repeat for several "
        "(default: AVAILABLE)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=1800.0,
        metavar="SECONDS",
        help="give up after this many seconds (default: 1800)",
    )
    parser.add_argument(
        "--interval", type=_positive, default=0.5, metavar="SECONDS", help="(default: 0.5)"
    )
    add_data_dir(parser, "data dir of the server to ask")
    parser.add_argument(
        "--endpoint-url", metavar="URL", help="the server's address (default: from the data dir)"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print only the outcome (default: show progress)"
    )
    parser.set_defaults(func=run)


def _positive(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a positive number of seconds")
    return value


def look_with_link(link: ServerLink, name: str):
    path = f"/_airdock/environments/{quote(name, safe='')}/progress"

    def look() -> waiting.Snapshot:
        try:
            found = signed_get(link, path)
        except ApiError as err:
            if err.code == "ResourceNotFoundException":
                return waiting.Snapshot(waiting.DELETED)
            raise
        return waiting.Snapshot(
            found["Status"],
            found,
            waiting.error_text(found.get("LastUpdate")),
            found.get("Step") or {},
            found.get("Components") or [],
        )

    return look


def run(args: argparse.Namespace) -> int:
    until = frozenset(args.until or ["AVAILABLE"])
    started = time.monotonic()
    try:
        link = connect(args.data_dir.resolve(), args.endpoint_url)
        with _Display(args.name, quiet=args.quiet) as display:
            final = waiting.wait(
                look_with_link(link, args.name),
                args.name,
                until,
                timeout=args.timeout,
                interval=args.interval,
                on_change=display.show,
            )
    except ServerUnreachable as err:
        return _fail(err.message, 2)
    except ApiError as err:
        return _fail(f"{err.code}: {err.message}", 2)
    except waiting.EnvironmentFailed as err:
        return _fail(err.message, 1)
    except waiting.WaitTimedOut as err:
        return _fail(err.message, 3)
    shown = "gone" if final.status == waiting.DELETED else final.status
    print(f"{args.name}: {shown} after {time.monotonic() - started:.1f} s", flush=True)
    return 0


def _fail(message: str, code: int) -> int:
    print(f"airdock env wait: {message}", file=sys.stderr, flush=True)
    return code


class _Display:
    """Live progress: a rich status line on a terminal, a plain line per change elsewhere."""

    def __init__(self, name: str, *, quiet: bool) -> None:
        self._name = name
        self._quiet = quiet
        self._status = None
        self._console = None
        self._started = time.monotonic()

    def __enter__(self) -> _Display:
        if not self._quiet and sys.stderr.isatty():
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)
            self._status = self._console.status(f"{self._name}: waiting")
            self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()

    def show(self, snapshot: waiting.Snapshot) -> None:
        if self._quiet:
            return
        now = f"{self._name}: {snapshot.describe()}"
        line = f"[{time.monotonic() - self._started:6.1f}s] {now}"
        if self._status is not None:
            # Each change stays on screen above the spinner, which shows the latest.
            self._console.print(line, markup=False)
            self._status.update(now)
        else:
            print(line, file=sys.stderr, flush=True)
