"""Files that let the ordinary AWS tools reach this server with no extra flags.

`DIR/endpoints.json` for programs, and `DIR/aws/config` + `DIR/aws/credentials` with a profile
`airdock`: per-service endpoint_url for mwaa and the embedded AWS services, and host-prefix
injection off (botocore would otherwise call `api.127.0.0.1`).
"""

from __future__ import annotations

import json
from pathlib import Path

from controlplane.credentials import KeyPair, write_private

PROFILE = "airdock"
# Services whose calls go to the embedded AWS, by the key the config file uses for each: the
# service id in snake case (so CloudWatch Logs is `cloudwatch_logs`, not `logs`).
EMBEDDED_SERVICES = (
    "s3",
    "iam",
    "sts",
    "ec2",
    "cloudwatch_logs",
    "cloudwatch",
    "sqs",
    "kms",
    "cloudformation",
)


def write_client_files(
    data_dir: Path,
    *,
    mwaa_endpoint: str,
    aws_endpoint: str | None,
    region: str,
    account_id: str,
    admin: KeyPair,
    aws_embedded: bool,
) -> None:
    endpoints = {
        "mwaa_endpoint": mwaa_endpoint,
        "aws_endpoint": aws_endpoint,
        "aws_embedded": aws_embedded,
        "region": region,
        "account_id": account_id,
    }
    write_private(data_dir / "endpoints.json", json.dumps(endpoints, indent=2) + "\n")
    services = [f"mwaa =\n  endpoint_url = {mwaa_endpoint}\n"]
    if aws_endpoint:
        services += [f"{name} =\n  endpoint_url = {aws_endpoint}\n" for name in EMBEDDED_SERVICES]
    config = (
        f"[profile {PROFILE}]\n"
        f"region = {region}\n"
        "output = json\n"
        "disable_host_prefix_injection = true\n"
        f"services = {PROFILE}-endpoints\n"
        "s3 =\n  addressing_style = path\n"
        f"\n[services {PROFILE}-endpoints]\n" + "".join(services)
    )
    credentials = (
        f"[{PROFILE}]\n"
        f"aws_access_key_id = {admin.access_key_id}\n"
        f"aws_secret_access_key = {admin.secret_access_key}\n"
    )
    write_private(data_dir / "aws" / "config", config)
    write_private(data_dir / "aws" / "credentials", credentials)
