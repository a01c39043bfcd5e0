"""`airdock infra up|down`: the MWAA prerequisites stack (infra/prerequisites.yaml).

By default the stack goes to the embedded AWS of the `airdock serve` whose data dir is given
(its endpoints.json and admin.json); `--endpoint-url` names another AWS-compatible endpoint and
`--real-aws` deploys to AWS itself with the standard credential chain. Deploying to AWS is never
the fallback of a missing data dir: the VPC endpoints the template creates cost money.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from controlplane.cli_common import add_data_dir, default_data_dir
from controlplane.clientconfig import ENDPOINTS_FILE, read_endpoints
from controlplane.credentials import ADMIN_FILE, read_admin
from controlplane.server_link import ApiError, ServerUnreachable, connect, ensure_up
from controlplane.stack_users import environments_using, stack_resources
from environments.aws.clients import AwsClients, AwsTarget
from environments.prerequisites import arguments
from environments.prerequisites import stack as prerequisites
from environments.prerequisites.errors import InfraError
from environments.prerequisites.template import find_template

DEFAULT_ENVIRONMENT = "airflow"


@dataclass(frozen=True)
class _Where:
    target: AwsTarget
    emulated: bool  # moto or another emulator: close the gaps of its CloudFormation
    profile_dir: Path | None  # the data dir whose `airdock` AWS profile reaches the server
    description: str


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "infra", help="deploy the MWAA prerequisites (VPC, subnets, bucket, role) as a stack"
    )
    commands = parser.add_subparsers(dest="infra_command", required=True)

    up = commands.add_parser(
        "up",
        help="create or update the prerequisites stack; print CreateEnvironment arguments",
        description="Create or update the stack of infra/prerequisites.yaml (idempotent), then "
        "print the CreateEnvironment arguments its outputs make.",
    )
    _common_options(up)
    up.add_argument(
        "--parameter",
        "-p",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a template parameter, e.g. CreateVpcEndpoints=false (repeatable); parameters "
        "not given keep the stack's current values",
    )
    up.add_argument(
        "--template", type=Path, help="template file (default infra/prerequisites.yaml)"
    )
    up.add_argument("--dag-s3-path", default="dags", help="DagS3Path to print (default dags)")
    up.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="json: only the CreateEnvironment input, for --cli-input-json (default text)",
    )
    up.set_defaults(func=partial(_run, _up))

    down = commands.add_parser(
        "down", help="delete the prerequisites stack (the DAG bucket is kept)"
    )
    _common_options(down)
    down.add_argument(
        "--force",
        action="store_true",
        help="delete the stack even while environments of the server use it (default: refuse)",
    )
    down.set_defaults(func=partial(_run, _down))


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--environment-name",
        help=f"environment the resources are for (default {DEFAULT_ENVIRONMENT}, or the "
        "stack's current one)",
    )
    parser.add_argument("--stack", help="stack name (default airdock-<environment name>)")
    where = parser.add_mutually_exclusive_group()
    add_data_dir(where, "data dir of a running `airdock serve`: deploy to its AWS", default=False)
    where.add_argument("--endpoint-url", help="an AWS-compatible endpoint (e.g. moto, LocalStack)")
    where.add_argument(
        "--real-aws", action="store_true", help="AWS itself, with the standard credential chain"
    )
    parser.add_argument("--region", help="region (default: the server's, or the AWS config's)")
    parser.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait until the stack operation finishes (default on)",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds to wait (default 3600)"
    )


class _UsageError(Exception):
    pass


def _quiet_sdk() -> None:
    # botocore logs each credential lookup at INFO, the CLI's default level: noise here.
    if logging.getLogger().getEffectiveLevel() >= logging.INFO:
        for name in ("botocore", "boto3"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _run(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    _quiet_sdk()
    try:
        return command(args)
    except _UsageError as err:
        print(f"airdock infra {args.infra_command}: {err}", file=sys.stderr)
        return 2
    except InfraError as err:
        print(f"airdock infra {args.infra_command}: {err}", file=sys.stderr)
        return 1


def _up(args: argparse.Namespace) -> int:
    where = _where(args)
    parameters = _parameters(args.parameter)
    if args.environment_name:
        parameters["EnvironmentName"] = args.environment_name
    stack = _stack_name(args)
    try:
        template = find_template(args.template)
    except InfraError as err:
        raise _UsageError(str(err)) from None
    clients = AwsClients(where.target)
    deployment = prerequisites.deploy(
        clients,
        template.read_text(),
        stack,
        parameters,
        emulated=where.emulated,
        # A new stack needs an environment name; an existing one keeps its own unless told.
        new_stack_defaults={"EnvironmentName": DEFAULT_ENVIRONMENT},
        wait=args.wait,
        timeout=args.timeout,
        progress=_note,
    )
    if not args.wait:
        _note(f"stack {deployment.stack_name}: {deployment.action}, {deployment.status}")
        return 0
    create_args = arguments.create_environment_args(deployment.outputs, args.dag_s3_path)
    problems = arguments.preflight(clients, create_args, where.target.region)
    if args.output == "json":
        for line in _summary(deployment, where):
            _note(line)
        print(json.dumps(create_args, indent=2))
    else:
        print("\n".join(_summary(deployment, where)))
        print()
        print("\n".join(_instructions(create_args, deployment.outputs, where)))
    for problem in problems:
        print(f"airdock infra up: check failed: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _down(args: argparse.Namespace) -> int:
    where = _where(args)
    stack = _stack_name(args)
    if where.profile_dir is not None and not args.force:
        _refuse_while_used(where, stack)
    teardown = prerequisites.destroy(
        AwsClients(where.target),
        stack,
        emulated=where.emulated,
        wait=args.wait,
        timeout=args.timeout,
    )
    if not teardown.existed:
        print(f"stack {stack} does not exist in {where.description}; nothing to delete")
        return 0
    print(f"stack {stack} {'deleted' if args.wait else 'is being deleted'} ({where.description})")
    for kept in teardown.retained:
        print(f"  kept {kept} (DeletionPolicy Retain: it may hold your DAGs; delete it yourself)")
    return 0


def _refuse_while_used(where: _Where, stack: str) -> None:
    outputs = prerequisites.outputs_of(AwsClients(where.target), stack)
    if not outputs:
        return
    assert where.profile_dir is not None
    link = connect(where.profile_dir)
    try:
        users = environments_using(link, stack_resources(outputs))
    except ApiError as err:
        raise _UsageError(f"cannot list the server's environments: {err}") from None
    if users:
        raise _UsageError(
            f"environment(s) {', '.join(sorted(users))} use the role, subnets or security group "
            f"of stack {stack}; delete them first, or pass --force"
        )


def _where(args: argparse.Namespace) -> _Where:
    if args.real_aws:
        region = args.region or prerequisites.default_region()
        if not region:
            raise _UsageError("no region: pass --region or configure one (AWS_REGION, profile)")
        return _Where(AwsTarget(region=region), False, None, f"AWS {region}")
    if args.endpoint_url:
        region = args.region or prerequisites.default_region() or "us-east-1"
        return _Where(
            AwsTarget(region=region, endpoint_url=args.endpoint_url),
            True,
            None,
            f"{args.endpoint_url} ({region})",
        )
    data_dir = (args.data_dir or default_data_dir()).resolve()
    try:
        endpoints = read_endpoints(data_dir)
    except (OSError, ValueError) as err:
        raise _UsageError(
            f"no running `airdock serve` found in {data_dir} ({err.__class__.__name__}: "
            f"{ENDPOINTS_FILE} is missing or unreadable); start one, or pass --data-dir DIR, "
            "--endpoint-url URL, or --real-aws"
        ) from None
    try:
        ensure_up(endpoints.mwaa_endpoint)
    except ServerUnreachable as err:
        raise _UsageError(err.message) from None
    region = args.region or endpoints.region
    if region != endpoints.region:
        _note(
            f"note: the server serves {endpoints.region}; it checks environments against "
            f"prerequisites there, not in {region}"
        )
    if not endpoints.aws_endpoint:  # the server runs with --real-aws
        return _Where(AwsTarget(region=region), False, data_dir, f"AWS {region}")
    embedded = endpoints.aws_embedded
    key = _admin_key(data_dir) if embedded else (None, None)
    target = AwsTarget(
        region=region,
        endpoint_url=endpoints.aws_endpoint,
        access_key_id=key[0],
        secret_access_key=key[1],
    )
    kind = "embedded AWS" if embedded else "AWS endpoint"
    return _Where(target, True, data_dir, f"the {kind} of {data_dir} ({region})")


def _admin_key(data_dir: Path) -> tuple[str, str]:
    try:
        admin = read_admin(data_dir)
    except (OSError, ValueError) as err:
        raise _UsageError(f"cannot read {data_dir / ADMIN_FILE}: {err}") from None
    return admin.access_key_id, admin.secret_access_key


def _parameters(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _UsageError(f"--parameter {pair!r}: expected KEY=VALUE")
        found[key] = value
    return found


def _stack_name(args: argparse.Namespace) -> str:
    return args.stack or f"airdock-{args.environment_name or DEFAULT_ENVIRONMENT}"


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _summary(deployment: prerequisites.Deployment, where: _Where) -> list[str]:
    lines = [
        f"stack {deployment.stack_name}: {deployment.action} ({deployment.status}) "
        f"in {where.description}"
    ]
    width = max((len(k) for k in deployment.outputs), default=0)
    lines += [f"  {key.ljust(width)}  {value}" for key, value in sorted(deployment.outputs.items())]
    if deployment.adjustments:
        lines.append("set through the plain APIs (the emulator's CloudFormation ignores them):")
        lines += [f"  {item}" for item in deployment.adjustments]
    return lines


def _instructions(create_args: dict[str, Any], outputs: dict[str, str], where: _Where) -> list[str]:
    bucket = outputs.get("BucketName") or create_args["SourceBucketArn"].rsplit(":", 1)[-1]
    lines = []
    if where.profile_dir is not None:
        lines += [
            "# the `airdock` AWS profile of the server reaches it and its AWS:",
            f"export AWS_CONFIG_FILE={shlex.quote(str(where.profile_dir / 'aws' / 'config'))}",
            "export AWS_SHARED_CREDENTIALS_FILE="
            + shlex.quote(str(where.profile_dir / "aws" / "credentials")),
            "export AWS_PROFILE=airdock",
        ]
    prefix = create_args["DagS3Path"].strip("/")
    lines.append(f"# put DAGs under s3://{bucket}/{prefix}/, then create the environment:")
    lines.append(" \\\n  ".join(create_environment_command(create_args)))
    return lines


def create_environment_command(create_args: dict[str, Any]) -> list[str]:
    """`aws mwaa create-environment` with the arguments, one quoted option per item."""
    network = create_args["NetworkConfiguration"]
    options = [
        "aws mwaa create-environment",
        f"--name {shlex.quote(create_args['Name'])}",
        f"--execution-role-arn {shlex.quote(create_args['ExecutionRoleArn'])}",
        f"--source-bucket-arn {shlex.quote(create_args['SourceBucketArn'])}",
        f"--dag-s3-path {shlex.quote(create_args['DagS3Path'])}",
        "--network-configuration "
        + shlex.quote(
            f"SubnetIds={','.join(network['SubnetIds'])},"
            f"SecurityGroupIds={','.join(network['SecurityGroupIds'])}"
        ),
    ]
    if create_args.get("KmsKey"):
        options.append(f"--kms-key {shlex.quote(create_args['KmsKey'])}")
    return options
