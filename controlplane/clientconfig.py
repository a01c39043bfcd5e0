"""Files that let the ordinary AWS tools reach this server with no extra flags.

`DIR/endpoints.json` for programs, and `DIR/aws/config` + `DIR/aws/credentials` with a profile
`airdock`: per-service endpoint_url for mwaa and the embedded AWS services, and host-prefix
injection off (botocore would otherwise call `api.127.0.0.1`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from controlplane.credentials import KeyPair
from environments.plumbing.files import atomic_write

PROFILE = "airdock"
ENDPOINTS_FILE = "endpoints.json"
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


@dataclass(frozen=True)
class Endpoints:
    """Where a running `airdock serve` answers, as it records in ENDPOINTS_FILE."""

    mwaa_endpoint: str
    aws_endpoint: str | None  # None: the server works against real AWS
    aws_embedded: bool
    region: str
    account_id: str
    # The local CA that the environments' HTTPS addresses chain to (controlplane.doors).
    ca_bundle: str | None = None


def read_endpoints(data_dir: Path) -> Endpoints:
    """What the server of a data dir recorded: OSError when it has not written the file (it has
    never served there), ValueError when the file is damaged."""
    data = json.loads((data_dir / ENDPOINTS_FILE).read_text())
    try:
        return Endpoints(
            mwaa_endpoint=data["mwaa_endpoint"],
            aws_endpoint=data.get("aws_endpoint"),
            aws_embedded=bool(data.get("aws_embedded")),
            region=data["region"],
            account_id=str(data["account_id"]),
            ca_bundle=data.get("ca_bundle"),
        )
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{data_dir / ENDPOINTS_FILE} is incomplete ({err!r})") from None


def write_client_files(data_dir: Path, endpoints: Endpoints, admin: KeyPair) -> None:
    atomic_write(data_dir / ENDPOINTS_FILE, json.dumps(asdict(endpoints), indent=2) + "\n")
    services = [f"mwaa =\n  endpoint_url = {endpoints.mwaa_endpoint}\n"]
    if endpoints.aws_endpoint:
        services += [
            f"{name} =\n  endpoint_url = {endpoints.aws_endpoint}\n" for name in EMBEDDED_SERVICES
        ]
    config = (
        f"[profile {PROFILE}]\n"
        f"region = {endpoints.region}\n"
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
    atomic_write(data_dir / "aws" / "config", config)
    atomic_write(data_dir / "aws" / "credentials", credentials)
