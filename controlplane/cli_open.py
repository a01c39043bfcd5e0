"""`airdock env open NAME [--browser]`: a fresh web-login URL for the environment's Airflow UI.

It calls CreateWebLoginToken as the caller (the standard AWS variables or profile, else the
data dir's admin key), so the browser is signed in as the Airflow role the caller's policy
allows. The URL holds a token that works once, within 60 seconds.
"""

from __future__ import annotations

import argparse
import sys
import webbrowser
from urllib.parse import quote

from controlplane.cli_common import add_data_dir
from controlplane.server_link import ApiError, ServerUnreachable, connect, signed_call


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "open",
        help="print a fresh sign-in URL for the environment's Airflow UI (valid once, 60 s)",
    )
    parser.add_argument("name", help="environment name")
    parser.add_argument(
        "--browser", action="store_true", help="also open it in this machine's web browser"
    )
    add_data_dir(parser, "data dir of the server to ask")
    parser.add_argument(
        "--endpoint-url", metavar="URL", help="the server's address (default: from the data dir)"
    )
    parser.set_defaults(func=run)


def login_url(token: dict) -> str:
    return (
        f"https://{token['WebServerHostname']}/aws_mwaa/aws-console-sso?login=true"
        f"#{token['WebToken']}"
    )


def run(args: argparse.Namespace) -> int:
    try:
        link = connect(args.data_dir.resolve(), args.endpoint_url)
        token = signed_call(link, "POST", f"/webtoken/{quote(args.name, safe='')}")
    except ServerUnreachable as err:
        print(f"airdock env open: {err.message}", file=sys.stderr)
        return 2
    except ApiError as err:
        print(f"airdock env open: {err.code}: {err.message}", file=sys.stderr)
        return 1 if err.code == "ResourceNotFoundException" else 2
    url = login_url(token)
    print(url)
    print(
        f"Signs in as {token.get('AirflowIdentity')} ({token.get('IamIdentity')}); "
        "the link works once, within 60 seconds.",
        file=sys.stderr,
    )
    if args.browser and not webbrowser.open(url):
        print("airdock env open: no web browser could be started here", file=sys.stderr)
        return 2
    return 0
